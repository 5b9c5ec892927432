package jobs

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing"
	"gpubroker/billing/stripesim"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
	"gpubroker/site"
	"gpubroker/workspaces"
)

// testBundle is one worker's world: a fresh database, the Stripe stand-in behind the real
// billing client, the GPU simulator behind the broker, and a recording Sender.
type testBundle struct {
	pool   *pgxpool.Pool
	deps   *Deps
	stripe *stripesim.Server
	sim    *sim.Sim
	sender *recordingSender
	// inserter enqueues as the API does (an insert-only client).
	inserter Inserter
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := testdb.New(t)
	catalog, err := site.Catalog()
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ss := stripesim.New(stripesim.Config{PublicURL: srv.URL, Logger: slog.New(slog.DiscardHandler), SweepInterval: -1, RetrySchedule: []time.Duration{}})
	t.Cleanup(ss.Close)
	mux.Handle(stripesim.DefaultPrefix+"/", ss)
	mux.Handle(workspaces.URLPrefix, workspaces.Handler()) // the CDN, for the starter projects
	// The simulator's stand-in IDEs are served beside the CDN, so readiness asks real URLs.
	gpus := sim.New(sim.Options{IDEBaseURL: srv.URL})
	mux.Handle("/dev/gpu/", gpus.Handler())
	sender := &recordingSender{}
	deps := (&Deps{
		Pool: pool, Catalog: catalog, Broker: gpu.NewBroker(gpus), Sender: sender,
		Payments:  billing.New(billing.Config{SecretKey: "sk_test_jobs", APIBase: srv.URL + stripesim.DefaultPrefix}),
		PublicURL: srv.URL, Logger: slog.New(slog.DiscardHandler), RetryDelay: time.Millisecond,
		PollInterval: time.Millisecond,
	}).withDefaults()
	ins, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return &testBundle{pool: pool, deps: deps, stripe: ss, sim: gpus, sender: sender, inserter: ins}
}

// work runs one job of worker through River's test worker and returns what became of it
// (completed, failed for a retry, snoozed…). The job's row is committed, so the worker's own
// transactions (it uses the pool) see it and what the worker enqueued stays.
func work[T river.JobArgs](t *testing.T, b *testBundle, w river.Worker[T], args T) *rivertest.WorkResult {
	t.Helper()
	ctx := context.Background()
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: slog.New(slog.DiscardHandler)}, w)
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := tw.Work(ctx, t, tx, args, nil)
	if res == nil {
		require.NoError(t, err) // no result: the job could not even run
	}
	require.NoError(t, tx.Commit(ctx))
	return res
}

// enqueued returns the kinds of the jobs waiting in the queue (not the one just worked).
func (b *testBundle) enqueued(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT kind FROM river_job WHERE state IN ('available', 'scheduled') ORDER BY id`)
	require.NoError(t, err)
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return kinds
}

// order stores a priced order with its pod and returns both ids.
func (b *testBundle) order(t *testing.T, plan, email string) (orderID, podID string) {
	t.Helper()
	ctx := context.Background()
	r := gpubroker.OrderRequest{Email: email, Name: "Ada", Plan: plan, Template: "data-science", GPU: "a100", Region: "us-east", Hours: 2}
	if plan == "free" {
		r.GPU, r.Hours = "rtx4090", 1
	}
	q, err := b.deps.Catalog.Quote(r)
	require.NoError(t, err)
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		o, pod, err := postgres.CreateOrder(ctx, tx, q)
		orderID, podID = o.ID, pod
		return err
	}))
	return orderID, podID
}

// paidSession is a Checkout Session for orderID of one line item at cents, paid at the stand-in
// with the card that succeeds (so its PaymentIntent is authorized), as fetched afterwards.
func (b *testBundle) paidSession(t *testing.T, orderID, email, item string, cents int64) *gpubroker.CheckoutSession {
	t.Helper()
	ctx := context.Background()
	cs, err := b.deps.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID: orderID, Email: email, Currency: gpubroker.Currency, SuccessURL: "https://gpubroker.example/ok",
		LineItems: []gpubroker.LineItem{{Name: item, UnitAmountCent: cents, Quantity: 1}},
	})
	require.NoError(t, err)
	_, err = b.stripe.Pay(ctx, cs.ID, stripesim.CardSucceeds)
	require.NoError(t, err)
	cs, err = b.deps.Payments.GetCheckout(ctx, cs.ID)
	require.NoError(t, err)
	return cs
}

// paidOrderSession is paidSession for the whole of an order's amount.
func (b *testBundle) paidOrderSession(t *testing.T, orderID string) *gpubroker.CheckoutSession {
	t.Helper()
	o, err := postgres.GetOrder(context.Background(), b.pool, orderID)
	require.NoError(t, err)
	return b.paidSession(t, orderID, o.Email, "pod", o.AmountCents)
}

// authorized makes a paid order authorized at the stand-in and in the database, attached to a
// new active account, with its pod deploying (as a Deploy click leaves it).
func (b *testBundle) authorized(t *testing.T, email string) (orderID, podID, piID string) {
	t.Helper()
	ctx := context.Background()
	orderID, podID = b.order(t, "pro", email)
	cs := b.paidOrderSession(t, orderID)
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := postgres.AuthorizeOrder(ctx, tx, orderID, cs.ID, cs.PaymentIntentID, time.Now(), time.Now().Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		acct, _, err := postgres.UpsertAccount(ctx, tx, email, "Ada", orderID)
		if err != nil {
			return err
		}
		if err := postgres.AttachOrder(ctx, tx, orderID, acct.ID); err != nil {
			return err
		}
		if _, _, err := postgres.ActivateAccount(ctx, tx, acct.ID, "", time.Now()); err != nil {
			return err
		}
		_, err = postgres.MovePod(ctx, tx, podID, gpubroker.PodConfigured, gpubroker.PodDeploying, gpubroker.PodUpdate{DeployRequestedAt: gpubroker.Ptr(time.Now())})
		return err
	}))
	return orderID, podID, cs.PaymentIntentID
}

func (b *testBundle) pod(t *testing.T, id string) *gpubroker.Pod {
	t.Helper()
	p, err := postgres.GetPod(context.Background(), b.pool, id)
	require.NoError(t, err)
	return p
}

// recordingSender is a Sender that records what it was asked to send.
type recordingSender struct {
	mu   sync.Mutex
	sent []gpubroker.Message
	err  error
}

func (s *recordingSender) Send(_ context.Context, m gpubroker.Message) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	s.sent = append(s.sent, m)
	return "msg-" + m.Kind, nil
}

func (s *recordingSender) messages() []gpubroker.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gpubroker.Message(nil), s.sent...)
}
