package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
	"gpubroker/gpu"
	"gpubroker/postgres"
)

// launch starts an instance at the simulator under name, as a provider would report it.
func (b *testBundle) launch(t *testing.T, name string) *gpu.Instance {
	t.Helper()
	offers, err := b.sim.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	in, err := b.sim.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: name, Image: "img", IDE: gpu.IDEJupyter})
	require.NoError(t, err)
	return in
}

// An instance named as ours that no live pod owns is terminated (once: a rerun while the
// termination is queued reports nothing new); a running pod's own instance, a provisioning
// pod's and another integration's are left alone.
func TestReconcileEndsOrphanInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}

	_, runningPod := b.order(t, "pro", "run@example.com")
	own := b.launch(t, InstanceName(runningPod))
	_, err := b.pool.Exec(ctx, `UPDATE pods SET status = 'running', provider = 'sim', instance_id = $2, started_at = now() WHERE id = $1`, runningPod, own.ID)
	require.NoError(t, err)
	second := b.launch(t, InstanceName(runningPod)) // a second instance under the running pod's name
	_, provisioningPod := b.order(t, "pro", "prov@example.com")
	_, err = b.pool.Exec(ctx, `UPDATE pods SET status = 'provisioning' WHERE id = $1`, provisioningPod)
	require.NoError(t, err)
	b.launch(t, InstanceName(provisioningPod))
	_, endedPod := b.order(t, "pro", "ended@example.com")
	_, err = b.pool.Exec(ctx, `UPDATE pods SET status = 'failed' WHERE id = $1`, endedPod)
	require.NoError(t, err)
	ofEnded := b.launch(t, InstanceName(endedPod))
	nobodys := b.launch(t, InstanceName("6f1f6a4e-0000-4000-8000-000000000000"))
	b.launch(t, "someone-elses-notebook")

	res := work(t, b, w, ReconcileArgs{})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	rows, err := b.pool.Query(ctx, `SELECT args->>'instance_id' FROM river_job WHERE kind = 'terminate_instance' ORDER BY args->>'instance_id'`)
	require.NoError(t, err)
	ended, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{second.ID, ofEnded.ID, nobodys.ID}, ended)
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.orphan_instance'`))

	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'terminate_instance'`), "queued once")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.orphan_instance'`), "reported once")
}

// A captured order whose pod was given up without a refund job (a lost job) gets its refund
// queued; one whose refund job ran out of attempts is reported, not retried.
func TestReconcileRefundsStrandedCaptures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}

	orderID, podID, _ := b.authorized(t, "stranded@example.com")
	res := work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	// The provision job is lost and the pod failed without its refund: what a bug would leave.
	_, err := b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'provision'`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE pods SET status = 'failed' WHERE id = $1`, podID)
	require.NoError(t, err)

	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'refund' AND args->>'pod_id' = $1`, podID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.refund_queued' AND order_id = $1`, orderID))
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.refund_queued'`), "queued once")

	// The refund runs out of attempts: a person decides (a dispute); the reconciler reports it.
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE kind = 'refund'`)
	require.NoError(t, err)
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'refund'`), "not retried")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders WHERE id = $1 AND drift LIKE '%refund job ran out of attempts%'`, orderID))

	// Ops delete the discarded job rather than retry it: the next run queues the refund again.
	_, err = b.pool.Exec(ctx, `DELETE FROM river_job WHERE kind = 'refund'`)
	require.NoError(t, err)
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'refund' AND state = 'available'`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.refund_queued' AND order_id = $1`, orderID))

	// The refund is made (the queued job's work, run here): nothing is left to do.
	res = work(t, b, &RefundWorker{d: b.deps}, RefundArgs{PodID: podID, Reason: "test"})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = 'refund' AND state = 'available'`)
	require.NoError(t, err)
	o, err := postgres.GetOrder(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.OrderRefunded, o.Status)
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'refund'`), "no refund queued for a refunded order")
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.refund_queued'`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'provision'`), "no provisioning requeued")
}

// An order and its PaymentIntent that agree are marked checked; one Stripe changed behind our
// back is reported (orders.drift, reconcile.drift once) and never changed by the reconciler.
func TestReconcileReportsPaymentDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}

	fine, _, _ := b.authorized(t, "fine@example.com")
	drifted, _, pi := b.authorized(t, "drift@example.com")
	_, err := b.pool.Exec(ctx, `DELETE FROM river_job`) // no job is working on them
	require.NoError(t, err)
	_, err = b.deps.Payments.Cancel(ctx, pi, "requested_by_customer", "behind-our-back")
	require.NoError(t, err)

	work(t, b, w, ReconcileArgs{})
	var drift *string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT drift FROM orders WHERE id = $1`, drifted).Scan(&drift))
	require.NotNil(t, drift)
	require.Contains(t, *drift, "is canceled at Stripe")
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT drift FROM orders WHERE id = $1`, fine).Scan(&drift))
	require.Nil(t, drift)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM orders WHERE reconciled_at IS NOT NULL`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.drift'`))
	o, err := postgres.GetOrder(ctx, b.pool, drifted)
	require.NoError(t, err)
	require.Equal(t, gpubroker.OrderAuthorized, o.Status, "reported, never changed")

	// Due again later: still drifting, not reported twice.
	_, err = b.pool.Exec(ctx, `UPDATE orders SET reconciled_at = now() - interval '1 hour'`)
	require.NoError(t, err)
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.drift'`))
	// Both were compared again by the sweep, which goes on after the newer one next time.
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reconcile_sweep WHERE cursor = (SELECT max(created_at) FROM orders)`))
}

// Issue 19.2: "a pod past its paid end is ended" held only while its terminate job did. A
// running pod 10 minutes past ends_at is ended through the normal terminate path, unless an
// extension may still move its end: a checkout still open, or one paid whose event is not yet
// processed.
func TestReconcileEndsOverduePods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}
	now := b.deps.now()

	running := func(email string, endedAgo time.Duration) string {
		t.Helper()
		_, podID := b.order(t, "pro", email)
		_, err := b.pool.Exec(ctx, `UPDATE pods SET status = 'running', provider = 'sim', instance_id = 'i-'||id, started_at = $2::timestamptz - interval '2 hours', ends_at = $2 WHERE id = $1`,
			podID, now.Add(-endedAgo))
		require.NoError(t, err)
		return podID
	}
	extension := func(podID, session string, created time.Time) {
		t.Helper()
		_, err := b.pool.Exec(ctx, `INSERT INTO extensions (pod_id, order_id, hours, amount_cents, stripe_session_id, created_at)
			SELECT id, order_id, 1, 179, $2, $3 FROM pods WHERE id = $1`, podID, session, created)
		require.NoError(t, err)
	}

	overdue := running("overdue@example.com", 11*time.Minute) // its terminate job was cancelled
	justEnded := running("just@example.com", 5*time.Minute)
	open := running("open@example.com", 11*time.Minute)
	extension(open, "cs_open", now.Add(-10*time.Minute))
	paying := running("paying@example.com", 40*time.Minute)
	extension(paying, "cs_paid", now.Add(-35*time.Minute))
	_, err := b.pool.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, payload) VALUES ('evt_paid', 'checkout.session.completed', 'cs_paid', '{}')`)
	require.NoError(t, err)
	abandoned := running("abandoned@example.com", 40*time.Minute)
	extension(abandoned, "cs_abandoned", now.Add(-35*time.Minute)) // expired unpaid, its webhook lost

	work(t, b, w, ReconcileArgs{})
	rows, err := b.pool.Query(ctx, `SELECT args->>'pod_id' FROM river_job WHERE kind = 'terminate'`)
	require.NoError(t, err)
	ended, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{overdue, abandoned}, ended, "just ended %s, open %s, paying %s", justEnded, open, paying)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.overdue_pod'`))

	// While the terminate jobs are alive, nothing is queued again.
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'terminate'`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.overdue_pod'`))
}

// One pass at a time: a pass that finds another running (its lock held) compares nothing; the
// next one does.
func TestReconcileOnePassAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}
	b.launch(t, InstanceName("6f1f6a4e-0000-4000-8000-00000000beef")) // an orphan: no pod has this id

	other, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(ctx) }() // a failing check must not leave the pool waiting for it
	var held bool
	require.NoError(t, other.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('reconcile'))`).Scan(&held))
	require.True(t, held)
	res := work(t, b, w, ReconcileArgs{})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Zero(t, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.orphan_instance'`), "a second pass repaired beside the first")

	require.NoError(t, other.Rollback(ctx))
	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.orphan_instance'`), "the next pass repairs")
}

// The sweep goes on past an order Stripe does not answer (it is compared again when the sweep
// comes back to it): stopping there would hold the sweep at that order for good.
func TestReconcileSweepPassesUnansweredOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &ReconcileWorker{d: b.deps}
	_, _, pi := b.authorized(t, "unanswered@example.com")
	later, _, _ := b.authorized(t, "answered@example.com")
	_, err := b.pool.Exec(ctx, `DELETE FROM river_job`) // no job is working on them
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE orders SET reconciled_at = now() - interval '1 day'`) // due, and swept
	require.NoError(t, err)
	b.stripe.InjectFault(stripesim.Fault{Method: "GET", Path: "/v1/payment_intents/" + pi, Mode: stripesim.FailBefore, Times: 100})

	work(t, b, w, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM reconcile_sweep WHERE cursor = (SELECT created_at FROM orders WHERE id = '`+later+`')`),
		"the sweep went on past the order Stripe did not answer")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM orders WHERE reconciled_at > now() - interval '1 hour'`), "the answered one was compared")
}
