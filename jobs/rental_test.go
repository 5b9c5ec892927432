package jobs

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/gpu/ready"
	"gpubroker/gpu/sim"
	"gpubroker/postgres"
)

// launched captures an authorized pod and runs its provisioning once: the instance is
// launched and booting. It returns the provision worker to run again.
func (b *testBundle) launched(t *testing.T, email string) (orderID, podID, piID, instanceID string, p *ProvisionWorker) {
	t.Helper()
	orderID, podID, piID = b.authorized(t, email)
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	p = &ProvisionWorker{d: b.deps}
	work(t, b, p, ProvisionArgs{PodID: podID})
	return orderID, podID, piID, *b.pod(t, podID).InstanceID, p
}

// running captures and provisions an authorized pod until it runs.
func (b *testBundle) running(t *testing.T, email string) (orderID, podID, piID string) {
	t.Helper()
	orderID, podID, piID, _, p := b.launched(t, email)
	work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status)
	return orderID, podID, piID
}

// paidExtension makes a captured payment of cents at the stand-in and records it in the
// ledger as an extension of hours hours, captured at capturedAt.
func (b *testBundle) paidExtension(t *testing.T, orderID string, cents int64, hours int, capturedAt time.Time) string {
	t.Helper()
	ctx := context.Background()
	cs := b.paidSession(t, orderID, "ext@example.com", "extension", cents)
	_, err := b.deps.Payments.Capture(ctx, cs.PaymentIntentID, "capture-ext-"+cs.ID)
	require.NoError(t, err)
	require.NoError(t, postgres.RecordPayment(ctx, b.pool, orderID, gpubroker.PaymentExtension, cs.PaymentIntentID, cents, hours, gpubroker.Currency, capturedAt))
	return cs.PaymentIntentID
}

// Issue 11.1: capture records the order's payment in the ledger; a pod of 2 hours extended by 1
// and stopped 10 minutes in is refunded its 170 unused minutes (170 × 179 / 60 → $5.07), from
// the extension first (newest first: all of its $1.79, then $3.28 of the order's), each payment
// under its own key refund-<payment>-1 and never above what it captured; a rerun makes no second
// refund and sends no second email.
func TestUnusedHoursRefundSpreadsNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	orderID, podID, pi := b.running(t, "spread@example.com")
	pod := b.pod(t, podID)
	payments, err := postgres.OrderPayments(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Len(t, payments, 1, "the capture recorded the order's payment")
	require.Equal(t, pod.AmountCents, payments[0].AmountCents)
	extPI := b.paidExtension(t, orderID, pod.HourlyCents, 1, time.Now().Add(time.Minute))

	stopped := pod.StartedAt.Add(10 * time.Minute)
	w := &UnusedHoursRefundWorker{d: b.deps}
	args := UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundEarlyStop, StoppedAt: stopped}
	res := work(t, b, w, args)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)

	refunds, err := postgres.PodRefunds(ctx, b.pool, podID, gpubroker.RefundEarlyStop)
	require.NoError(t, err)
	require.Len(t, refunds, 2)
	require.Equal(t, extPI, refunds[0].PaymentIntentID, "the extension is refunded first")
	require.Equal(t, pod.HourlyCents, refunds[0].AmountCents, "all of the extension")
	require.Equal(t, pi, refunds[1].PaymentIntentID)
	require.Equal(t, int64(507-179), refunds[1].AmountCents, "then the rest of the 170 minutes from the order")
	for _, r := range refunds {
		require.Equal(t, "refund-"+r.PaymentID+"-1", r.Key)
		require.NotNil(t, r.StripeRefundID)
		found, err := b.deps.Payments.FindRefund(ctx, r.PaymentIntentID, r.Key)
		require.NoError(t, err)
		require.NotNil(t, found, "stored at Stripe under its key")
		require.Equal(t, r.AmountCents, found.Amount)
	}
	require.Equal(t, int64(507), b.pod(t, podID).RefundedCents)
	require.Zero(t, b.refundMails(t, podID), "an early stop's amount goes in the pod's end email")

	res = work(t, b, w, args)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 1, b.stripe.RefundCount(pi))
	require.Equal(t, 1, b.stripe.RefundCount(extPI))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.early_stop_refunded'`, podID), "audited once")

	// The ledger refuses a share above what a payment may still refund.
	err = postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		return postgres.PlanRefunds(ctx, tx, podID, gpubroker.RefundPodDied, []gpubroker.RefundShare{{PaymentID: refunds[0].PaymentID, AmountCents: 1}})
	})
	require.ErrorContains(t, err, "above what it may still refund")
}

// An extension refunded in full because it extended nothing (paid after its pod stopped, or
// past the plan's max_hours) bought no hours: the refund of a pod that died counts only the
// hours the other payments bought. 2 hours + a 1-hour extension, dead after 70 minutes: 180
// minutes bought, 110 unused, 110 × 179 / 60 → $3.28 refunded (the extension's $1.79, then $1.49
// of the order's), not the 170 minutes of 4 hours.
func TestUnusedHoursRefundCountsNoHoursOfARefusedExtension(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	orderID, podID, pi := b.running(t, "refused-ext@example.com")
	pod := b.pod(t, podID)
	extPI := b.paidExtension(t, orderID, pod.HourlyCents, 1, time.Now().Add(time.Minute))
	latePI := b.paidExtension(t, orderID, pod.HourlyCents, 1, time.Now().Add(2*time.Minute))
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		id, err := postgres.PaymentIDByIntent(ctx, tx, latePI)
		if err != nil {
			return err
		}
		return postgres.PlanRefunds(ctx, tx, podID, gpubroker.RefundLateExtension, []gpubroker.RefundShare{{PaymentID: id, AmountCents: pod.HourlyCents}})
	}))

	work(t, b, &UnusedHoursRefundWorker{d: b.deps}, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundPodDied, StoppedAt: pod.StartedAt.Add(70 * time.Minute)})
	refunds, err := postgres.PodRefunds(ctx, b.pool, podID, gpubroker.RefundPodDied)
	require.NoError(t, err)
	require.Len(t, refunds, 2)
	require.Equal(t, extPI, refunds[0].PaymentIntentID)
	require.Equal(t, pod.HourlyCents, refunds[0].AmountCents)
	require.Equal(t, pi, refunds[1].PaymentIntentID)
	require.Equal(t, int64(328-179), refunds[1].AmountCents, "110 minutes in all, not 170")
}

// Issue 19.3: one rule, by the minute. A pod stopped by its owner 20 s in and one found dead
// 20 s in are refunded the same: every unused minute at the rate, rounded down to the cent, the
// plan fee kept. 2 hours of an A100 at $1.79 on Pro, 20 s run: 1 minute used, 119 unused,
// 119 × 179 / 60 = 355.01… → $3.55 (by the old rules: $1.79 stopped, $3.58 dead).
func TestStopAndDeathRefundTheSameByTheMinute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	refunded := map[gpubroker.RefundReason]int64{}
	for _, reason := range []gpubroker.RefundReason{gpubroker.RefundEarlyStop, gpubroker.RefundPodDied} {
		_, podID, pi := b.running(t, string(reason)+"-20s@example.com")
		pod := b.pod(t, podID)
		require.Equal(t, int64(179), pod.HourlyCents)
		require.Equal(t, 2, pod.Hours)
		res := work(t, b, &UnusedHoursRefundWorker{d: b.deps}, UnusedHoursRefundArgs{PodID: podID, Reason: reason, StoppedAt: pod.StartedAt.Add(20 * time.Second)})
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		refunds, err := postgres.PodRefunds(ctx, b.pool, podID, reason)
		require.NoError(t, err)
		for _, r := range refunds {
			refunded[reason] += r.AmountCents
		}
		require.Equal(t, 1, b.stripe.RefundCount(pi), string(reason))
	}
	require.Equal(t, refunded[gpubroker.RefundEarlyStop], refunded[gpubroker.RefundPodDied], "stopped and dead 20 s in: one rule")
	require.Equal(t, int64(355), refunded[gpubroker.RefundEarlyStop], "119 unused minutes × 179 / 60, rounded down")

	var text string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT e.text_body FROM emails e JOIN pods p ON e.dedupe_key = 'pod_died_refund:' || p.id
		JOIN orders o ON o.id = p.order_id WHERE o.email = $1`, gpubroker.RefundPodDied+"-20s@example.com").Scan(&text))
	require.Contains(t, text, "after 1 minute of the 120 minutes you paid for, so we refunded the 119 minutes it did not use at $1.79 an hour, rounded down to the cent: $3.55.")
	require.Contains(t, text, "The plan fee is not refunded.", "Pro's fee was paid")
}

// The refund texts say the plan fee is kept only when the order paid one.
func TestRefundTextsNameTheFeeOnlyWhenPaid(t *testing.T) {
	refunds := []postgres.LedgerRefund{{AmountCents: 300}, {AmountCents: 207}}
	withFee := &gpubroker.Pod{Hours: 3, HourlyCents: 179, AmountCents: 4900 + 3*179}
	noFee := &gpubroker.Pod{Hours: 3, HourlyCents: 179, AmountCents: 3 * 179}
	require.Equal(t, "You stopped it early, so we are refunding $5.07 to your card: every minute you paid for and did not use, at $1.79 an hour, rounded down to the cent. "+
		"The plan fee is not refunded. Refunds usually reach your account within 5 to 10 business days.", earlyStopNote(refunds, withFee))
	require.NotContains(t, earlyStopNote(refunds, noFee), "plan fee")
	require.Contains(t, earlyStopNote(refunds, noFee), "$5.07")
	require.Empty(t, earlyStopNote(nil, withFee))
	require.Equal(t, "Your pod stopped working after 10 minutes of the 180 minutes you paid for, so we refunded the 170 minutes it did not use at $1.79 an hour, rounded down to the cent: $5.07.",
		unusedReason(gpubroker.RefundPodDied, noFee, 180, 10, 507, 6))
	require.Contains(t, unusedReason(gpubroker.RefundPodDied, withFee, 180, 10, 507, 6), "$5.07. The plan fee is not refunded.")
}

// Issue 11.1: a pod stopped in its last minute, or a free one, is refunded nothing.
func TestUnusedHoursRefundNothingUnused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, pi := b.running(t, "nothing@example.com")
	pod := b.pod(t, podID)
	res := work(t, b, &UnusedHoursRefundWorker{d: b.deps}, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundEarlyStop, StoppedAt: pod.StartedAt.Add(119*time.Minute + 30*time.Second)})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 0, b.stripe.RefundCount(pi))
	refunds, err := postgres.PodRefunds(ctx, b.pool, podID, gpubroker.RefundEarlyStop)
	require.NoError(t, err)
	require.Empty(t, refunds)
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// refundMails counts the refund emails about the pod's early stop.
func (b *testBundle) refundMails(t *testing.T, podID string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM emails WHERE kind = 'refunded' AND dedupe_key = $1`, "early_stop_refund:"+podID).Scan(&n))
	return n
}

// Issue 11.2: a terminate job scheduled for an end the pod has been extended past leaves it
// running; one for the current end (or a user's, with no end) terminates it.
func TestTerminateAfterExtension(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, _ := b.running(t, "ext-term@example.com")
	oldEnd := *b.pod(t, podID).EndsAt
	newEnd := oldEnd.Add(time.Hour)
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := postgres.MovePod(ctx, tx, podID, gpubroker.PodRunning, gpubroker.PodRunning, gpubroker.PodUpdate{EndsAt: &newEnd})
		return err
	}))
	w := &TerminateWorker{d: b.deps}
	res := work(t, b, w, TerminateArgs{PodID: podID, EndsAt: &oldEnd})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status, "extended: runs on")
	ends := *b.pod(t, podID).EndsAt // as stored (microseconds)
	work(t, b, w, TerminateArgs{PodID: podID, EndsAt: &ends})
	require.Equal(t, gpubroker.PodTerminated, b.pod(t, podID).Status)
}

// Issue 11.3: one dead check is not enough (a provider's hiccup); the second in a row fails the
// pod, in one transaction with the instance's termination and the refund of the hours not
// completed. A healthy pod is left alone, and a rerun after the failure changes nothing.
func TestPodHealthTwoDeadChecks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, podID, _ := b.running(t, "health@example.com")
	_, healthyID, _ := b.running(t, "healthy@example.com")
	w := &PodHealthWorker{d: b.deps}
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status)

	require.True(t, b.sim.Fail(*b.pod(t, podID).InstanceID, "the host failed"))
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status, "one dead check")
	work(t, b, w, PodHealthArgs{})
	p := b.pod(t, podID)
	require.Equal(t, gpubroker.PodFailed, p.Status)
	require.Contains(t, *p.Error, "stopped working")
	require.Equal(t, gpubroker.PodRunning, b.pod(t, healthyID).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'unused_hours_refund' AND args->>'pod_id' = $1 AND args->>'reason' = 'pod_died'`, podID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'terminate_instance' AND args->>'pod_id' = $1`, podID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.died'`, podID))

	work(t, b, w, PodHealthArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.died'`, podID))
}

// A status the provider reports that its client cannot interpret (gpu.StateUnknown: RunPod
// MIGRATING, say) is not a dead check: like a provider that cannot answer, it neither counts nor
// clears, however many checks in a row. A dead check before it still counts; a healthy one after
// it clears the count.
func TestPodHealthUnknownStatusIsNotDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, podID, _ := b.running(t, "health-unknown@example.com")
	instanceID := *b.pod(t, podID).InstanceID
	failures := func() int { return b.count(t, `SELECT health_failures FROM pods WHERE id = $1`, podID) }
	w := &PodHealthWorker{d: b.deps}

	require.True(t, b.sim.Fail(instanceID, "the host failed"))
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, 1, failures())
	require.True(t, b.sim.Report(instanceID, gpu.StateUnknown, `unknown RunPod status "MIGRATING"`))
	for range 3 {
		work(t, b, w, PodHealthArgs{})
		require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status)
		require.Equal(t, 1, failures(), "an unknown status neither counts as dead nor clears")
	}
	require.True(t, b.sim.Report(instanceID, gpu.StateRunning, ""))
	work(t, b, w, PodHealthArgs{})
	require.Zero(t, failures())
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind IN ('unused_hours_refund', 'terminate_instance')`))
}

// Provisioning waits through a status it cannot interpret as through a slow boot: the instance
// is kept (not terminated, its offer not marked failed, nothing launched again) until it runs or
// the deadline passes.
func TestProvisionWaitsThroughUnknownStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, podID, _, instanceID, p := b.launched(t, "provision-unknown@example.com")
	require.True(t, b.sim.Report(instanceID, gpu.StateUnknown, `unknown Lambda status "migrating"`))
	for range 2 {
		res := work(t, b, p, ProvisionArgs{PodID: podID})
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		pod := b.pod(t, podID)
		require.Equal(t, gpubroker.PodProvisioning, pod.Status)
		require.Equal(t, instanceID, *pod.InstanceID)
		require.Empty(t, pod.FailedOffers)
	}
	require.Equal(t, 1, b.sim.Launches())
	require.Zero(t, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'terminate_instance'`))

	require.True(t, b.sim.Report(instanceID, gpu.StateRunning, ""))
	work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status)
}

// An instance on its way out while it boots (terminating: nothing will come of it) is given up
// at once, as a failed one is: forgotten, its offer marked, and the pod launched again.
func TestProvisionRelaunchesAfterATerminatingInstance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, podID, _, instanceID, p := b.launched(t, "provision-terminating@example.com")
	require.True(t, b.sim.Report(instanceID, gpu.StateTerminating, "terminated by hand"))
	work(t, b, p, ProvisionArgs{PodID: podID})
	pod := b.pod(t, podID)
	require.Nil(t, pod.InstanceID, "forgotten")
	require.Len(t, pod.FailedOffers, 1)
	work(t, b, p, ProvisionArgs{PodID: podID})
	work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podID).Status)
	require.Equal(t, 2, b.sim.Launches())
}

// Issue 11.4: a pod of more than an hour gets one reminder an hour before its end, with a link
// to extend; a rerun sends nothing more, and a reminder for an end the pod was extended past
// sends nothing.
func TestPodEndingReminderOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, _ := b.running(t, "remind@example.com")
	pod := b.pod(t, podID)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'pod_ending' AND state = 'scheduled'
		AND abs(extract(epoch FROM scheduled_at - $2::timestamptz)) < 1 AND args->>'pod_id' = $1`, podID, pod.EndsAt.Add(-time.Hour)))
	reminders := func() int {
		return b.count(t, `SELECT count(*) FROM emails WHERE kind = 'pod_ending' AND to_email = 'remind@example.com'`)
	}
	w := &PodEndingWorker{d: b.deps}
	work(t, b, w, PodEndingArgs{PodID: podID, EndsAt: *pod.EndsAt})
	work(t, b, w, PodEndingArgs{PodID: podID, EndsAt: *pod.EndsAt})
	require.Equal(t, 1, reminders(), "once")
	var text string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT text_body FROM emails WHERE kind = 'pod_ending'`).Scan(&text))
	require.Contains(t, text, "/dashboard/#pod-"+podID)
	require.Contains(t, text, "extend")

	later := pod.EndsAt.Add(time.Hour)
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := postgres.MovePod(ctx, tx, podID, gpubroker.PodRunning, gpubroker.PodRunning, gpubroker.PodUpdate{EndsAt: &later})
		return err
	}))
	work(t, b, w, PodEndingArgs{PodID: podID, EndsAt: *pod.EndsAt})
	require.Equal(t, 1, reminders(), "extended past that end")
}

// twoProviders gives the bundle a broker over two simulators, alpha (tried first at equal
// prices) and zulu, each with its stand-in IDE served, and returns them.
func (b *testBundle) twoProviders(t *testing.T) (alpha, zulu *sim.Sim) {
	t.Helper()
	mk := func(name string) *sim.Sim {
		srv := httptest.NewUnstartedServer(nil)
		s := sim.New(sim.Options{Name: name, IDEBaseURL: "http://" + srv.Listener.Addr().String()})
		srv.Config.Handler = s.Handler()
		srv.Start()
		t.Cleanup(srv.Close)
		return s
	}
	alpha, zulu = mk("alpha"), mk("zulu")
	b.deps.Broker = gpu.NewBroker(alpha, zulu)
	return alpha, zulu
}

// Issue 20.5: before a launch, FindInstance asked every provider, so one provider that could
// not answer stopped launches everywhere. Only the providers a pod was sent to are asked now.
func TestProvisionIgnoresAnOutageWhereThePodWasNeverSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alpha, zulu := b.twoProviders(t)
	zulu.FailNext(sim.OpInstances, gpu.ErrUnavailable, 1000)
	_, podID, _ := b.authorized(t, "outage-elsewhere@example.com")
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	p := &ProvisionWorker{d: b.deps}
	work(t, b, p, ProvisionArgs{PodID: podID})
	work(t, b, p, ProvisionArgs{PodID: podID})
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodRunning, pod.Status)
	require.Equal(t, "alpha", *pod.Provider)
	require.Equal(t, []string{"alpha"}, pod.SentTo)
	require.Equal(t, 1, alpha.Launches())
}

// Issue 20.5: a launch whose answer was lost, at a provider that then cannot answer: the pod
// waits for it (its instance may be there) for LostLaunchWait, then launches elsewhere, and the
// reconciler ends the duplicate once that provider answers again.
func TestProvisionLaunchesElsewhereAfterALostLaunch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	alpha, zulu := b.twoProviders(t)
	_, podID, _ := b.authorized(t, "lost-launch@example.com")
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	p := &ProvisionWorker{d: b.deps}

	alpha.FailAfterLaunch(1)
	res := work(t, b, p, ProvisionArgs{PodID: podID})
	require.NotEqual(t, river.EventKindJobCompleted, res.EventKind, "the answer was lost")
	require.Equal(t, 1, alpha.Launches(), "but the instance exists")
	require.Equal(t, []string{"alpha"}, b.pod(t, podID).SentTo)

	alpha.FailNext(sim.OpInstances, gpu.ErrUnavailable, 2) // this run, and the one past the wait
	work(t, b, p, ProvisionArgs{PodID: podID})
	require.Nil(t, b.pod(t, podID).InstanceID, "waits: alpha may hold the instance")
	require.Zero(t, zulu.Launches())

	_, err := b.pool.Exec(ctx, `UPDATE pods SET sent_at = sent_at - $2::interval WHERE id = $1`, podID, (b.deps.LostLaunchWait + time.Minute).String())
	require.NoError(t, err)
	work(t, b, p, ProvisionArgs{PodID: podID})
	work(t, b, p, ProvisionArgs{PodID: podID})
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodRunning, pod.Status)
	require.Equal(t, "zulu", *pod.Provider, "launched elsewhere, not again where the lost one went")
	require.Equal(t, 1, alpha.Launches())

	// alpha answers again: the reconciler ends the lost instance, whose pod runs another.
	work(t, b, &ReconcileWorker{d: b.deps}, ReconcileArgs{})
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'terminate_instance' AND args->>'provider' = 'alpha'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'reconcile.orphan_instance'`))
}

// Issue 20: RunPod reports ssh.direct only once the pod's port is mapped. A pod launched with
// the customer's keys whose provider reports it running without an SSH address is not usable
// yet (the dashboard would say it has no key); it runs once the address is there.
func TestProvisionWaitsForTheSSHAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, _ := b.authorized(t, "ssh-later@example.com")
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	_, err := b.pool.Exec(ctx, `UPDATE pods SET launch_keys = ARRAY['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvRmIp3E3Ktv/o1Pbx2wRgb8fVpw2ZRqDt/xGa1LQ5d ada@laptop'],
		ssh_key_fingerprints = ARRAY['SHA256:x'] WHERE id = $1`, podID)
	require.NoError(t, err)
	b.sim.BreakNext(sim.NoSSHAddr, 1)
	p := &ProvisionWorker{d: b.deps}
	work(t, b, p, ProvisionArgs{PodID: podID})
	for range 2 {
		res := work(t, b, p, ProvisionArgs{PodID: podID})
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Equal(t, gpubroker.PodProvisioning, b.pod(t, podID).Status, "running at the provider, no SSH address yet")
	}
	require.True(t, b.sim.Mend(*b.pod(t, podID).InstanceID))
	work(t, b, p, ProvisionArgs{PodID: podID})
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodRunning, pod.Status)
	require.NotEmpty(t, pod.Connection.SSH)
}

// ownSecret is a provider that runs the IDE with a secret of its own, as Lambda's JupyterLab
// does with its jupyter_token.
type ownSecret struct {
	gpu.Provider
	secret string
}

func (p ownSecret) GetInstance(ctx context.Context, id string) (*gpu.Instance, error) {
	in, err := p.Provider.GetInstance(ctx, id)
	if err == nil && in.State == gpu.StateRunning {
		in.IDESecret = p.secret
	}
	return in, err
}

// recordingReady says every target is usable and keeps what it was asked.
type recordingReady struct {
	mu      sync.Mutex
	targets []ready.Target
}

func (r *recordingReady) Check(_ context.Context, t ready.Target) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets = append(r.targets, t)
	return nil
}

// Issue 20.4: a provider's own IDE secret (Lambda's jupyter_token) is what readiness checks
// the link with, and becomes the pod's: the customer's link and email carry it, not ours.
func TestProvisionTakesTheProvidersIDESecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.deps.Broker = gpu.NewBroker(ownSecret{Provider: b.sim, secret: "lambda-jupyter-token"})
	rec := &recordingReady{}
	b.deps.Ready = rec
	_, podID, _ := b.authorized(t, "own-secret@example.com")
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})
	p := &ProvisionWorker{d: b.deps}
	work(t, b, p, ProvisionArgs{PodID: podID})
	work(t, b, p, ProvisionArgs{PodID: podID})
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodRunning, pod.Status)
	require.Equal(t, "lambda-jupyter-token", pod.IDESecret)
	require.NotEmpty(t, rec.targets)
	require.Equal(t, "lambda-jupyter-token", rec.targets[len(rec.targets)-1].Secret)
	var text string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT text_body FROM emails WHERE dedupe_key = 'pod_ready:' || $1`, podID).Scan(&text))
	require.Contains(t, text, "token=lambda-jupyter-token")
}
