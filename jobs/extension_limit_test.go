package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
	"gpubroker/postgres"
)

// openExtension opens an extension of hours on a running pod as the API does: a pending
// extension and its Checkout Session (the payment captured at once). It returns the session id.
func (b *testBundle) openExtension(t *testing.T, podID string, hours int) string {
	t.Helper()
	ctx := context.Background()
	pod := b.pod(t, podID)
	var x *postgres.Extension
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		x, err = postgres.CreateExtension(ctx, tx, pod.ID, pod.OrderID, hours, int64(hours)*pod.HourlyCents, pod.Currency)
		return err
	}))
	cs, err := b.deps.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID: pod.OrderID, ExtensionID: x.ID, Email: "ext@example.com", Currency: x.Currency, SuccessURL: "https://gpubroker.example/ok",
		LineItems:        []gpubroker.LineItem{{Name: strconv.Itoa(hours) + " more GPU hours", UnitAmountCent: pod.HourlyCents, Quantity: int64(hours)}},
		AutomaticCapture: true,
	})
	require.NoError(t, err)
	require.NoError(t, postgres.SetExtensionSession(ctx, b.pool, x.ID, cs.ID))
	return cs.ID
}

// sessionCompleted stores Stripe's checkout.session.completed for a session, as the webhook
// does, and runs its job.
func (b *testBundle) sessionCompleted(t *testing.T, sessionID string) {
	t.Helper()
	ev := &gpubroker.WebhookEvent{ID: "evt_" + sessionID, Type: "checkout.session.completed", ObjectID: sessionID, Payload: []byte(`{}`)}
	inserted, err := postgres.InsertStripeEvent(context.Background(), b.pool, ev, StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.True(t, inserted)
	res := work(t, b, &StripeEventWorker{d: b.deps}, StripeEventArgs{EventID: ev.ID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
}

// queuedJob is the one job of kind waiting in the queue.
func (b *testBundle) queuedJob(t *testing.T, kind string) *rivertype.JobRow {
	t.Helper()
	ctx := context.Background()
	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = $1 AND state IN ('available', 'scheduled')`, kind).Scan(&id))
	c, err := river.NewClient[pgx.Tx](riverpgxv5.New(b.pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	job, err := c.JobGet(ctx, id)
	require.NoError(t, err)
	return job
}

// kept is what Stripe holds of a PaymentIntent's money: captured less refunded.
func (b *testBundle) kept(t *testing.T, pi string) int64 {
	t.Helper()
	p := b.stripe.PaymentIntent(pi)
	require.NotNil(t, p.LatestCharge, pi)
	ch := b.stripe.Charge(*p.LatestCharge)
	return ch.AmountCaptured - ch.AmountRefunded
}

// Mutant m5 (a refused extension's hours counted again at early stop). A Pro pod of 2 hours
// (max_hours 168) gets two 100-hour extensions, both paid: the first extends it to 102 hours,
// the second would pass the limit, is over_limit and refunded in full, once. The owner stops
// it 30 minutes in: the early-stop refund counts the 102 hours bought, not 202, so we keep
// exactly the plan fee and the 30 minutes used (89.5 cents at $1.79 an hour; the refund rounds
// down, so 90). Counting the refused hours again would refund the plan fee as well.
func TestEarlyStopAfterAnOverLimitExtensionKeepsFeeAndTimeUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, orderPI := b.running(t, "over-limit-stop@example.com")
	pod := b.pod(t, podID)
	require.Equal(t, []any{2, int64(179)}, []any{pod.Hours, pod.HourlyCents})
	fee := gpubroker.PlanFeeCents(pod.AmountCents, pod.Hours, pod.HourlyCents)
	require.Equal(t, int64(4900), fee)

	// Both checkouts are open before either is paid (the API counts open checkouts only for
	// their session's lifetime), then both are paid.
	sessA, sessB := b.openExtension(t, podID, 100), b.openExtension(t, podID, 100)
	for _, s := range []string{sessA, sessB} {
		_, err := b.stripe.Pay(ctx, s, stripesim.CardSucceeds)
		require.NoError(t, err)
	}
	b.sessionCompleted(t, sessA)
	b.sessionCompleted(t, sessB)
	piA, piB := *b.stripe.Session(sessA).PaymentIntent, *b.stripe.Session(sessB).PaymentIntent
	var statusB string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT status FROM extensions WHERE stripe_session_id = $1`, sessB).Scan(&statusB))
	require.Equal(t, string(gpubroker.ExtensionOverLimit), statusB)
	require.WithinDuration(t, pod.EndsAt.Add(100*time.Hour), *b.pod(t, podID).EndsAt, time.Second, "extended once")

	// The over-limit refund queued with the payment is made once; a rerun makes none.
	refunds := &UnusedHoursRefundWorker{d: b.deps}
	res := workAgain(t, b, refunds, b.queuedJob(t, "unused_hours_refund"))
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	work(t, b, refunds, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundOverLimit, StoppedAt: time.Now()})
	require.Equal(t, 1, b.stripe.RefundCount(piB))
	require.Equal(t, int64(0), b.kept(t, piB), "the over-limit extension went back in full")

	// The owner stops the pod 30 minutes in.
	res = work(t, b, refunds, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundEarlyStop, StoppedAt: pod.StartedAt.Add(30 * time.Minute)})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	early, err := postgres.PodRefunds(ctx, b.pool, podID, gpubroker.RefundEarlyStop)
	require.NoError(t, err)
	var refunded int64
	for _, r := range early {
		refunded += r.AmountCents
	}
	require.Equal(t, gpubroker.UnusedMinutesCents(102*60, 30, 179), refunded, "102 hours bought, not 202")
	require.Equal(t, 1, b.stripe.RefundCount(piB), "the refused extension is not refunded again")
	require.Equal(t, fee+90, b.kept(t, orderPI)+b.kept(t, piA)+b.kept(t, piB), "kept: the plan fee and 30 minutes at $1.79 an hour")
}
