package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/jobs"
)

// The checks compare three ledgers with what each customer did: our database, the Stripe
// stand-in's PaymentIntents and charges, and the RunPod stand-in's record of every instance it
// was asked for. None of them trusts the product's own account of what happened: the money
// expected of each order is computed here from the scenario, the catalog price and the times
// the driver pressed Stop or killed the instance (bounded above by when the pod ended).

// orderRow is what the checks read of an order and its pod.
type orderRow struct {
	status      gpubroker.OrderStatus
	amount      int64
	hours       int
	hourly      int64
	sessionID   string
	podStatus   gpubroker.PodStatus
	instanceID  string
	startedAt   *time.Time
	endedAt     *time.Time // the pod's terminated_at: after its stop, or after the check that found it dead
	extSessions []string   // the sessions of every extension checkout, paid or not
	drift       string
}

func (r *run) readOrder(ctx context.Context, orderID string) (*orderRow, error) {
	var o orderRow
	err := r.pool.QueryRow(ctx, `SELECT o.status, o.amount_cents, o.hours, o.hourly_cents, COALESCE(o.stripe_session_id, ''),
		p.status, COALESCE(p.instance_id, ''), p.started_at, p.terminated_at, COALESCE(o.drift, ''),
		COALESCE((SELECT array_agg(e.stripe_session_id) FROM extensions e WHERE e.pod_id = p.id AND e.stripe_session_id IS NOT NULL), '{}')
		FROM orders o JOIN pods p ON p.order_id = o.id WHERE o.id = $1`, orderID).
		Scan(&o.status, &o.amount, &o.hours, &o.hourly, &o.sessionID, &o.podStatus, &o.instanceID, &o.startedAt, &o.endedAt, &o.drift, &o.extSessions)
	return &o, err
}

// money is what Stripe holds of the order: captured and refunded over its own payment and its
// extensions', and the PaymentIntents it was taken through.
func (r *run) money(o *orderRow) (captured, refunded int64, problems []string) {
	ss := r.front.stripe
	for _, sid := range append([]string{o.sessionID}, o.extSessions...) {
		cs := ss.Session(sid)
		if cs == nil || cs.PaymentIntent == nil {
			continue // never paid
		}
		pi := ss.PaymentIntent(*cs.PaymentIntent)
		if pi == nil {
			problems = append(problems, "payment intent "+*cs.PaymentIntent+" unknown to Stripe")
			continue
		}
		if n := ss.CaptureCount(pi.ID); n > 1 {
			problems = append(problems, fmt.Sprintf("%s captured %d times", pi.ID, n))
		}
		if n := ss.CapturesRefused(pi.ID); n > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d captures asked after it was captured (a retry that did not look first)", pi.ID, n))
		}
		var back int64
		if pi.LatestCharge != nil {
			if ch := ss.Charge(*pi.LatestCharge); ch != nil && ch.Captured {
				// Stripe counts the part of a hold never captured (all of a released one) as
				// refunded: only what goes back of the captured amount is a refund.
				back = ch.AmountRefunded - (ch.Amount - ch.AmountCaptured)
			}
		}
		if back > pi.AmountReceived {
			problems = append(problems, fmt.Sprintf("%s refunded %d of %d captured", pi.ID, back, pi.AmountReceived))
		}
		captured += pi.AmountReceived
		refunded += back
	}
	return captured, refunded, problems
}

// expectedKept is what the customer should have paid in the end, from its own record, as the
// range [lo, hi] it may fall in: nothing for a pod that never ran; for one that did, the price
// it was shown and every extension hour that moved its end, and, stopped by its owner or dead at
// the provider (one rule for both), the minutes used: the refund is every unused minute at the
// rate it was shown, rounded down to the cent, a begun minute counting as used (at least one);
// minus what ops refunded by hand. An extension paid after the pod ended comes back in full.
// Nothing here is read from our tables or computed by the product's functions.
//
// The paid time starts when the pod first answered: after its instance booted at the provider
// (startLo, from the stand-in's record) and before the customer saw it running (sawRunning). It
// ends at the Stop request the product received (between the click and its answer) or at the
// check that found it dead (between the kill and the driver seeing it noticed). The earliest
// end after the latest start gives lo, the latest end after the earliest start hi. hour is how
// long a rented hour lasts in the run.
func expectedKept(out *outcome, startLo time.Time, hour time.Duration) (lo, hi int64, why string) {
	if out.scenario == scFree || !out.ran {
		return 0, 0, "nothing: the pod never ran (or was free)"
	}
	hours := out.hours + out.extended
	paid := out.shown + int64(out.extended)*out.hourly
	var endLo, endHi time.Time
	switch {
	case !out.stoppedAt.IsZero():
		endLo, endHi, why = out.stoppedAt, out.stopAnswered, "the fee and the minutes used up to its owner's Stop; every unused minute refunded"
	case !out.killedAt.IsZero():
		endLo, endHi, why = out.killedAt, out.sawDead, "the fee and the minutes used up to when it was found dead; every unused minute refunded, as for a Stop"
	default:
		return paid - out.manualCent, paid - out.manualCent, "the price shown and every hour bought: it ran to its end"
	}
	if endHi.Before(endLo) {
		endHi = endLo
	}
	if startLo.IsZero() || startLo.After(out.sawRunning) {
		startLo = out.sawRunning
	}
	start := out.sawRunning // the latest the paid time can have begun
	if !out.toldStart.IsZero() && !out.toldStart.Before(startLo) && !out.toldStart.After(out.sawRunning) {
		// The start its pod showed the customer lies where it can (checked in check): the paid
		// time began then, so only the stop's window is left uncertain and a minute counted
		// wrong shows.
		start, startLo = out.toldStart, out.toldStart
	}
	keptFor := func(start, end time.Time) int64 {
		d := end.Sub(start)
		used := int64(1) // a pod that ran has used a minute
		if d > 0 {
			used = max(1, int64((d*60+hour-1)/hour)) // the minutes begun, a minute being hour/60
		}
		unused := int64(hours)*60 - used
		if unused <= 0 {
			return paid
		}
		return paid - unused*out.hourly/60
	}
	return keptFor(start, endLo) - out.manualCent, keptFor(startLo, endHi) - out.manualCent, why
}

// check returns every violation of the promise.
func (r *run) check(ctx context.Context) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	for _, p := range r.procs() {
		for _, c := range p.Crashes() {
			add("process: %s", c)
		}
	}
	byID := map[string]gpu.State{}
	launches := map[string]int{} // instances ever created under each name, terminated ones included
	records := r.front.runpod.Sim.Records()
	for _, rec := range records {
		byID[rec.ID] = rec.Status
		launches[rec.Name]++
	}
	// bootedBy is the earliest a pod's instance could first answer: the stand-in's record of
	// the last instance created for it before its owner saw it running, plus the boot.
	bootedBy := func(out *outcome) time.Time {
		var at time.Time
		for _, rec := range records {
			if rec.Name == jobs.InstanceName(out.podID) && rec.CreatedAt.Before(out.sawRunning) && rec.CreatedAt.After(at) {
				at = rec.CreatedAt
			}
		}
		if at.IsZero() {
			return at
		}
		return at.Add(bootDelay)
	}
	hour := r.opts.RentalHour

	for _, out := range r.outcomes {
		who := fmt.Sprintf("customer %d (%s, %s)", out.i, out.scenario, out.email)
		if out.err != nil {
			add("%s: the journey failed: %v", who, out.err)
		}
		if out.orderID == "" {
			continue
		}
		o, err := r.readOrder(ctx, out.orderID)
		if err != nil {
			add("%s: reading order %s: %v", who, out.orderID, err)
			continue
		}
		// Steady states only.
		switch o.status {
		case gpubroker.OrderCaptured, gpubroker.OrderRefunded, gpubroker.OrderAuthorized, gpubroker.OrderReleased, gpubroker.OrderFree:
		default:
			add("%s: order %s is %s", who, out.orderID, o.status)
		}
		switch o.podStatus {
		case gpubroker.PodRunning, gpubroker.PodTerminated, gpubroker.PodFailed, gpubroker.PodConfigured:
		default:
			add("%s: pod %s is %s", who, out.podID, o.podStatus)
		}
		// Time: every rental ends within the run; one left running ends with its paid time.
		startLo := bootedBy(out)
		if !out.toldStart.IsZero() && (out.toldStart.Before(startLo.Add(-time.Second)) || out.toldStart.After(out.sawRunning.Add(time.Second))) {
			add("%s: its pod says it started at %s, not between its instance's boot (%s) and when its owner saw it run (%s)", who,
				out.toldStart.Format(time.StampMilli), startLo.Format(time.StampMilli), out.sawRunning.Format(time.StampMilli))
		}
		if o.podStatus == gpubroker.PodRunning {
			add("%s: its pod still runs after its paid time (%d hours of %s)", who, out.hours+out.extended, hour)
		}
		switch {
		case out.ran && !out.killedAt.IsZero() && out.err == nil && o.podStatus != gpubroker.PodFailed:
			add("%s: its pod died at the provider and ended %s, not failed", who, o.podStatus)
		case out.ran && out.killedAt.IsZero() && out.err == nil && o.podStatus != gpubroker.PodTerminated:
			add("%s: its pod was stopped or ran to its end and is %s, not terminated", who, o.podStatus)
		}
		if !out.sawEnded.IsZero() {
			paidFor := hour * time.Duration(out.hours+out.extended)
			if earliest := startLo.Add(paidFor); !startLo.IsZero() && out.sawEnded.Before(earliest.Add(-time.Second)) {
				add("%s: its pod ended %s before its paid time was up", who, earliest.Sub(out.sawEnded).Round(time.Millisecond))
			}
			if latest := out.sawRunning.Add(paidFor + endSlack); out.sawEnded.After(latest) {
				add("%s: its pod ended %s after its paid time was up", who, out.sawEnded.Sub(latest.Add(-endSlack)).Round(time.Millisecond))
			}
		}
		// Money.
		captured, refunded, problems := r.money(o)
		for _, p := range problems {
			add("%s: %s", who, p)
		}
		r.holdChecks(out, add, who)
		lo, hi, why := expectedKept(out, startLo, hour)
		if got := captured - refunded; got < lo || got > hi {
			want := fmt.Sprintf("%d¢", lo)
			if hi != lo {
				want = fmt.Sprintf("%d¢ to %d¢", lo, hi)
			}
			add("%s: Stripe kept %d¢ (captured %d, refunded %d), expected %s: %s", who, got, captured, refunded, want, why)
		}
		// Instances: at most one launch per pod, and a running pod's instance runs.
		if n := launches[jobs.InstanceName(out.podID)]; n > 1 {
			add("%s: %d instances launched for one pod", who, n)
		}
		if o.podStatus == gpubroker.PodRunning {
			if byID[o.instanceID] != gpu.StateRunning {
				add("%s: pod runs but its instance %s is %q at the provider", who, o.instanceID, byID[o.instanceID])
			}
		}
		// Emails: exactly one of each that the journey called for, each sent once.
		ran := o.startedAt != nil
		if out.ran && !ran {
			add("%s: its owner saw the pod running, our record says it never started", who)
		}
		ended := ran && o.podStatus != gpubroker.PodRunning
		r.sendChecks(ctx, out, add, who)
		for _, m := range []struct {
			kind, key string
			want      bool
		}{
			{gpubroker.MailActivation, "activation:" + out.orderID, true},
			{gpubroker.MailPodReady, "pod_ready:" + out.podID, ran},
			{gpubroker.MailPodEnded, "pod_terminated:" + out.podID, ended},
		} {
			var n int
			if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE kind = $1 AND to_email = $2 AND (dedupe_key = $3 OR $1 = 'activation')`, m.kind, out.email, m.key).Scan(&n); err != nil {
				add("%s: %v", who, err)
				continue
			}
			if want := map[bool]int{true: 1, false: 0}[m.want]; n != want {
				add("%s: %d %s emails, expected %d", who, n, m.kind, want)
			}
		}
		// The drift made on purpose is found.
		if out.scenario == scStrand && out.deployed {
			if o.status != gpubroker.OrderRefunded {
				add("%s: the capture stranded by a lost provisioning job was not refunded (order %s)", who, o.status)
			}
			var n int
			_ = r.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE order_id = $1 AND action = 'reconcile.refund_queued'`, out.orderID).Scan(&n)
			if n == 0 {
				add("%s: the reconciler did not queue the stranded capture's refund", who)
			}
		}
		if out.manualCent > 0 && o.drift == "" {
			add("%s: the reconciler did not report the refund made by hand at Stripe", who)
		}
	}
	// No instance left at the provider without its running pod (what waitQuiet waited for).
	for _, stray := range r.strayInstances(ctx) {
		add("instance %s is alive at the provider with no running pod", stray)
	}
	r.mu.Lock()
	orphan := r.orphanID
	r.mu.Unlock()
	if orphan != "" && byID[orphan] != gpu.StateTerminated {
		add("the orphan instance %s was not terminated", orphan)
	}
	// Every event Stripe delivered and we answered 2xx was stored and processed: Stripe never
	// sends it again, so one answered and lost is an order stalled for good.
	if rows, err := r.pool.Query(ctx, `SELECT id FROM stripe_events WHERE processed_at IS NOT NULL`); err != nil {
		add("reading stripe_events: %v", err)
	} else {
		done := map[string]bool{}
		for rows.Next() {
			var id string
			if rows.Scan(&id) == nil {
				done[id] = true
			}
		}
		rows.Close()
		for _, ev := range r.front.stripe.Events() {
			if ev.Delivered && !done[ev.ID] {
				add("event %s (%s) was answered 2xx and never processed", ev.ID, ev.Type)
			}
		}
	}
	// A pod runs once and ends once, in the status its story calls for: each of these moves
	// happens to a pod at most once (the release's and the refund's guarded moves run for every
	// status the pod may be in, and only the one it is in may move).
	if rows, err := r.pool.Query(ctx, `SELECT pod_id::text, action, count(*) FROM audit_events
		WHERE action IN ('pod.running', 'pod.terminated', 'pod.died', 'pod.failed', 'pod.hold_released') AND pod_id IS NOT NULL
		GROUP BY 1, 2 HAVING count(*) > 1`); err != nil {
		add("reading audit_events: %v", err)
	} else {
		for rows.Next() {
			var pod, action string
			var n int
			if rows.Scan(&pod, &action, &n) == nil {
				add("pod %s was audited %s %d times: a guarded move moved it twice", pod, action, n)
			}
		}
		rows.Close()
	}
	// No job discarded, none stuck.
	rows, err := r.pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job
		WHERE state = 'discarded' OR (`+jobsToRun+`)
		GROUP BY 1, 2`)
	if err != nil {
		add("reading jobs: %v", err)
	} else {
		for rows.Next() {
			var kind, state string
			var n int
			if rows.Scan(&kind, &state, &n) == nil {
				add("%d %s jobs are %s", n, kind, state)
			}
		}
		rows.Close()
	}
	return v
}

// endSlack is how late a pod may end after its paid time: the terminate job's run, a worker
// killed under it and rescued, the provider's answer.
const endSlack = 45 * time.Second

// holdChecks: a pod that ran was paid for, with the amount its owner was shown; an undeployed
// hold was released by us, a margin before its deadline, not left to lapse.
func (r *run) holdChecks(out *outcome, add func(string, ...any), who string) {
	if out.pi == "" {
		return
	}
	pi := r.front.stripe.PaymentIntent(out.pi)
	if pi == nil {
		add("%s: Stripe does not know its PaymentIntent %s", who, out.pi)
		return
	}
	if out.ran && out.scenario != scFree && (pi.Status != "succeeded" || pi.AmountReceived != out.shown) {
		add("%s: its pod ran but its payment %s is %s with %d¢ received, expected succeeded with the %d¢ it was shown", who, pi.ID, pi.Status, pi.AmountReceived, out.shown)
	}
	if out.scenario != scIdle {
		return
	}
	deadline := out.paidAt.Add(holdLifetime)
	switch {
	case pi.Status != "canceled":
		add("%s: its undeployed hold %s is %s, expected released", who, pi.ID, pi.Status)
	case pi.CancellationReason != nil && *pi.CancellationReason == "automatic":
		add("%s: its undeployed hold %s lapsed at Stripe instead of being released before %s", who, pi.ID, deadline.Format(time.TimeOnly))
	case pi.CanceledAt != nil:
		at := time.Unix(*pi.CanceledAt, 0)
		if latest := deadline.Add(-5 * time.Second); at.After(latest) {
			add("%s: its hold was released at %s, at its deadline %s or after: it lapsed at the card network first", who, at.Format(time.TimeOnly), deadline.Format(time.TimeOnly))
		}
		if earliest := deadline.Add(-releaseMargin - 5*time.Second); at.Before(earliest) {
			add("%s: its hold was released at %s, before its last day to deploy (%s)", who, at.Format(time.TimeOnly), earliest.Format(time.TimeOnly))
		}
	}
}

// sendChecks counts what the customer received from SES per kind against our outbox's sent
// rows: exactly one send per row, whatever was retried. SES takes no idempotency key, so a
// worker killed between SES's answer and marking the row sent sends it again on the rescue:
// a second send is explained only by a kill within seconds after the first.
func (r *run) sendChecks(ctx context.Context, out *outcome, add func(string, ...any), who string) {
	sent := map[string]int{}
	last := map[string]time.Time{} // by message: kind, subject and text (two reminders differ)
	r.mu.Lock()
	kills := slices.Clone(r.killTimes)
	r.mu.Unlock()
	for _, m := range r.front.ses.SentTo(out.email) {
		for _, t := range m.EmailTags {
			if t.Name != "kind" {
				continue
			}
			msg := t.Value
			if s := m.Content.Simple; s != nil {
				msg += "\x00" + s.Subject.Data
				if s.Body.Text != nil {
					msg += "\x00" + s.Body.Text.Data
				}
			}
			if prev, ok := last[msg]; ok && slices.ContainsFunc(kills, func(k time.Time) bool { return !k.Before(prev) && k.Sub(prev) < 5*time.Second }) {
				r.logf("%s: %s sent again after a worker was killed mid-send (at least once)", who, t.Value)
				last[msg] = m.At
				continue
			}
			sent[t.Value]++
			last[msg] = m.At
		}
	}
	rows, err := r.pool.Query(ctx, `SELECT kind, count(*) FROM emails WHERE to_email = $1 AND status = 'sent' GROUP BY kind`, out.email)
	if err != nil {
		add("%s: %v", who, err)
		return
	}
	outbox := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if rows.Scan(&kind, &n) == nil {
			outbox[kind] = n
		}
	}
	rows.Close()
	for kind := range sent {
		if _, ok := outbox[kind]; !ok {
			outbox[kind] = 0
		}
	}
	for kind, n := range outbox {
		if sent[kind] != n {
			add("%s: SES sent %d %s emails for %d sent outbox rows", who, sent[kind], kind, n)
		}
	}
	if out.sawEnded.IsZero() || out.hours+out.extended <= 1 {
		return
	}
	// Left to run past the hour before its end: reminded once per end it reached.
	if sent[gpubroker.MailPodEnding] < 1 {
		add("%s: ran to its end without the reminder an hour before", who)
	}
}
