package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// paidRental is a captured Pro order whose pod ran and was extended once, with Stripe ids as
// Stripe makes them: mixed-case base62.
type paidRental struct {
	order       *gpubroker.Order
	podID       string
	session, pi string
	ext         *postgres.Extension
	extSession  string
	extPI       string
	orderPay    string // ledger payment ids
	extPay      string
}

func newPaidRental(t *testing.T, pool *pgxpool.Pool, email, suffix string) *paidRental {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &paidRental{
		session: "cs_test_a1B2c3D4e5F6" + suffix, pi: "pi_3QxYzAbCdEf" + suffix,
		extSession: "cs_test_ExTeNd9Q" + suffix, extPI: "pi_3ExtAbCdEfGh" + suffix,
	}
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		o, podID, err := postgres.CreateOrder(ctx, tx, quote(t, "pro", email))
		if err != nil {
			return err
		}
		r.order, r.podID = o, podID
		if _, err := postgres.AuthorizeOrder(ctx, tx, o.ID, r.session, r.pi, now, now.Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		if _, err := postgres.MoveOrder(ctx, tx, o.ID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, now); err != nil {
			return err
		}
		if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentOrder, r.pi, o.AmountCents, o.Hours, "usd", now); err != nil {
			return err
		}
		if r.orderPay, err = postgres.PaymentIDByIntent(ctx, tx, r.pi); err != nil {
			return err
		}
		if r.ext, err = postgres.CreateExtension(ctx, tx, podID, o.ID, 2, 358, "usd"); err != nil {
			return err
		}
		if err := postgres.SetExtensionSession(ctx, tx, r.ext.ID, r.extSession); err != nil {
			return err
		}
		if _, err := postgres.PayExtension(ctx, tx, r.ext.ID, r.extSession, r.extPI, now); err != nil {
			return err
		}
		if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentExtension, r.extPI, 358, 2, "usd", now); err != nil {
			return err
		}
		r.extPay, err = postgres.PaymentIDByIntent(ctx, tx, r.extPI)
		return err
	}))
	return r
}

// Ops find an order by anything a customer, Stripe or a log line gives them: Stripe's ids are
// case-sensitive base62 and must match as they are, emails match whatever their case.
func TestSearchOrdersFindsEveryKindOfID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := newPaidRental(t, pool, "ada@example.com", "Aa")
	newPaidRental(t, pool, "bob@example.com", "Bb") // never found by a's ids

	for name, term := range map[string]string{
		"email in another case":        "ADA@Example.COM",
		"part of the email":            "Ada@",
		"order id":                     a.order.ID,
		"order id in capitals":         " " + strings.ToUpper(a.order.ID) + " ",
		"pod id":                       a.podID,
		"checkout session":             a.session,
		"payment intent":               a.pi,
		"extension's checkout session": a.extSession,
		"extension's payment intent":   a.extPI,
		"extension id":                 a.ext.ID,
	} {
		hits, err := postgres.SearchOrders(ctx, pool, term)
		require.NoError(t, err, name)
		require.Len(t, hits, 1, name)
		require.Equal(t, a.order.ID, hits[0].OrderID, name)
	}
	// A whole address finds that address's orders, not another address that contains it.
	newPaidRental(t, pool, "xada@example.com", "Xa")
	hits, err := postgres.SearchOrders(ctx, pool, "Ada@Example.com")
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Equal(t, a.order.ID, hits[0].OrderID)
	hits, err = postgres.SearchOrders(ctx, pool, "ada@")
	require.NoError(t, err)
	require.Len(t, hits, 2, "part of an address finds every address containing it")
	hits, err = postgres.SearchOrders(ctx, pool, strings.ToLower(a.session))
	require.NoError(t, err)
	require.Empty(t, hits, "a Stripe id is case-sensitive: another case is another id")
}

// An order's story includes its extensions' webhook events and their jobs (stored under the
// extension's id and session), the hour-before reminder, and ops' own River UI actions on its
// jobs; the extensions' PaymentIntents are listed for the Stripe dashboard link.
func TestOrderStoryShowsExtensionsAndReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := newPaidRental(t, pool, "ada@example.com", "Aa")
	b := newPaidRental(t, pool, "bob@example.com", "Bb")
	endsAt := time.Now().Add(time.Hour).Unix()
	for _, r := range []*paidRental{a, b} {
		// The extension's webhook: client_reference_id is the extension id, the object its session.
		_, err := pool.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, order_id, payload, processed_at)
			VALUES ($1, 'checkout.session.completed', $2, $3, '{}', now())`, "evt_ext"+r.extSession, r.extSession, r.ext.ID)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, payload) VALUES ($1, 'charge.refunded', $2, '{}')`, "evt_chg"+r.extPI, r.extPI)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO river_job (args, kind, queue, max_attempts) VALUES (jsonb_build_object('event_id', $1::text), 'stripe_event', 'default', 25)`, "evt_ext"+r.extSession)
		require.NoError(t, err)
		require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			_, _, err := postgres.InsertEmail(ctx, tx, gpubroker.Message{To: r.order.Email, Kind: gpubroker.MailPodEnding, Subject: "s", Text: "t", HTML: "h"},
				"pod_ending:"+r.podID+":"+strconv.FormatInt(endsAt, 10))
			return err
		}))
	}
	var jobID int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM river_job WHERE args->>'event_id' = $1`, "evt_ext"+a.extSession).Scan(&jobID))
	require.NoError(t, postgres.Audit(ctx, pool, postgres.AuditEvent{Action: "ops.riverui_action",
		Detail: map[string]any{"actor": "admin:ops", "method": "POST", "path": "/ops/riverui/api/jobs/retry", "job_ids": []int64{jobID}}}))

	st, err := postgres.GetOrderStory(ctx, pool, a.order.ID)
	require.NoError(t, err)
	count := func(source, what string) (n int) {
		for _, e := range st.Entries {
			if e.Source == source && e.What == what {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, count("email", gpubroker.MailPodEnding), "the reminder before the end")
	require.Equal(t, 1, count("webhook", "checkout.session.completed"), "the extension's payment")
	require.Equal(t, 1, count("webhook", "charge.refunded"), "an event about the extension's PaymentIntent")
	require.Equal(t, 1, count("job", "stripe_event"), "the job of the extension's event")
	require.Equal(t, 1, count("audit", "ops.riverui_action"), "ops retried one of its jobs")
	for _, e := range st.Entries {
		if e.What == "ops.riverui_action" {
			require.Equal(t, "admin:ops", e.Actor)
		}
	}
	require.Len(t, st.Extensions, 1)
	require.Equal(t, a.extPI, *st.Extensions[0].PaymentIntentID)
	require.Equal(t, a.extSession, *st.Extensions[0].StripeSessionID)
}

// The console's refunds are the ledger's, whatever their reason: a pod that never started, an
// early stop, a dead pod and an extension paid after its pod stopped; planned but not yet made
// ones too (a customer is owed them).
func TestConsoleListsEveryRefundReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := newPaidRental(t, pool, "ada@example.com", "Aa")
	b := newPaidRental(t, pool, "bob@example.com", "Bb")
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		if err := postgres.PlanRefunds(ctx, tx, a.podID, gpubroker.RefundLateExtension, []gpubroker.RefundShare{{PaymentID: a.extPay, AmountCents: 358}}); err != nil {
			return err
		}
		if err := postgres.PlanRefunds(ctx, tx, a.podID, gpubroker.RefundEarlyStop, []gpubroker.RefundShare{{PaymentID: a.orderPay, AmountCents: 179}}); err != nil {
			return err
		}
		if err := postgres.PlanRefunds(ctx, tx, b.podID, gpubroker.RefundPodDied, []gpubroker.RefundShare{{PaymentID: b.extPay, AmountCents: 179}}); err != nil {
			return err
		}
		return postgres.RecordFullRefund(ctx, tx, b.order.ID, b.podID, "refund-"+b.order.ID, "re_1AbC", time.Now())
	}))
	var lateID int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM refunds WHERE reason = 'late_extension'`).Scan(&lateID))
	require.NoError(t, postgres.MarkRefundMade(ctx, pool, lateID, "re_2XyZ", time.Now()))

	refunds, err := postgres.Refunds(ctx, pool, time.Now().Add(-24*time.Hour), 100)
	require.NoError(t, err)
	got := map[string]postgres.RefundRow{}
	for _, r := range refunds {
		got[string(r.Reason)] = r
	}
	require.Len(t, got, 4, "%+v", refunds)
	require.Equal(t, a.order.ID, got["late_extension"].OrderID)
	require.Equal(t, int64(358), got["late_extension"].AmountCents)
	require.Equal(t, "re_2XyZ", got["late_extension"].StripeRefundID)
	require.Equal(t, a.order.ID, got["early_stop"].OrderID)
	require.Empty(t, got["early_stop"].StripeRefundID, "planned, not made yet")
	require.Equal(t, b.order.ID, got["pod_died"].OrderID)
	require.Equal(t, b.order.ID, got["not_started"].OrderID)
	require.Equal(t, b.order.AmountCents, got["not_started"].AmountCents)
}

// The console shows what the reconciler found and repaired, and the orders in drift.
func TestConsoleReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := newPaidRental(t, pool, "ada@example.com", "Aa")
	newPaidRental(t, pool, "bob@example.com", "Bb")
	_, err := pool.Exec(ctx, `UPDATE orders SET drift = 'Stripe: PaymentIntent canceled; ours: captured' WHERE id = $1`, a.order.ID)
	require.NoError(t, err)
	for action, n := range map[string]int{"reconcile.orphan_instance": 2, "reconcile.refund_queued": 1, "reconcile.provision_requeued": 3, "reconcile.drift": 1} {
		for range n {
			require.NoError(t, postgres.Audit(ctx, pool, postgres.AuditEvent{Action: gpubroker.AuditAction(action)}))
		}
	}
	// The latest repair names the pod only: the console links its order.
	require.NoError(t, postgres.Audit(ctx, pool, postgres.AuditEvent{PodID: a.podID, Action: "reconcile.orphan_instance",
		Detail: map[string]any{"provider": "sim", "instance": "i-9", "why": "its pod is terminated"}}))
	audit, err := postgres.CountAuditActions(ctx, pool)
	require.NoError(t, err)
	sum, err := postgres.GetReconcileSummary(ctx, pool, audit)
	require.NoError(t, err)
	require.Equal(t, postgres.ReconcileSummary{DriftOrders: 1, OrphanInstancesEnded: 3, RefundsQueued: 1, ProvisionsRequeued: 3}, sum)
	repairs, err := postgres.ReconcileRepairs(ctx, pool, 20)
	require.NoError(t, err)
	require.Len(t, repairs, 7, "the repairs, not the drift reports")
	require.Equal(t, "reconcile.orphan_instance", repairs[0].Action)
	require.Equal(t, a.order.ID, repairs[0].OrderID)
	require.Equal(t, map[string]any{"instance": "i-9", "provider": "sim", "why": "its pod is terminated"}, repairs[0].Detail)
	drift, err := postgres.DriftOrders(ctx, pool, 50)
	require.NoError(t, err)
	require.Equal(t, []postgres.DriftRow{{OrderID: a.order.ID, Email: "ada@example.com", Drift: "Stripe: PaymentIntent canceled; ours: captured"}}, drift)

}

// The funnel counts the orders created in its window, each step only those that reached the
// steps before it.
func TestCountFunnelWindowAndNesting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	a := newPaidRental(t, pool, "ada@example.com", "Aa")
	newPaidRental(t, pool, "bob@example.com", "Bb")
	// Ada's pod ran, but her account was never activated: she is not past "authorized".
	_, err := pool.Exec(ctx, `UPDATE pods SET deploy_requested_at = now(), captured_at = now(), started_at = now() WHERE id = $1`, a.podID)
	require.NoError(t, err)
	f, err := postgres.CountFunnel(ctx, pool, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, postgres.FunnelCounts{CheckoutsStarted: 2, Authorized: 2, PaidCheckouts: 2, PaidAuthorized: 2}, f)
	_, err = pool.Exec(ctx, `WITH a AS (INSERT INTO accounts (email, name, status) VALUES ('ada@example.com', 'Ada', 'active') RETURNING id)
		UPDATE orders SET account_id = (SELECT id FROM a) WHERE id = $1`, a.order.ID)
	require.NoError(t, err)
	f, err = postgres.CountFunnel(ctx, pool, time.Time{})
	require.NoError(t, err)
	require.Equal(t, postgres.FunnelCounts{CheckoutsStarted: 2, Authorized: 2, Activated: 1, Deployed: 1, Captured: 1, Running: 1, PaidCheckouts: 2, PaidAuthorized: 2}, f)
	f, err = postgres.CountFunnel(ctx, pool, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.Zero(t, f, "no order created since")
}
