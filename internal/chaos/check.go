package chaos

import (
	"context"
	"fmt"
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
		var back int64
		if pi.LatestCharge != nil {
			if ch := ss.Charge(*pi.LatestCharge); ch != nil {
				back = ch.AmountRefunded
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

// expectedKept is what the customer should have paid in the end, from what they did, as the
// range [lo, hi] it may fall in: nothing for a pod that never ran; for one that did, the plan
// fee and every hour bought while it still runs, and, stopped by its owner or dead at the
// provider (one rule for both), the minutes used: the refund is every unused minute at the rate,
// rounded down to the cent, a begun minute counting as used (at least one); minus what ops
// refunded by hand. It is computed here, not by the product's functions.
//
// The product counts minutes up to the Stop request it received, or the first health check that
// found the pod dead: after the driver's click (stoppedAt) or kill (killedAt), and before the pod
// ended (endedAt, set by the termination or by the second dead check). Later means more minutes
// used and more kept, so the two ends of that window give lo and hi; they are one value unless
// a minute boundary falls inside it.
func expectedKept(out *outcome, o *orderRow) (lo, hi int64, why string) {
	if out.scenario == scFree || !out.deployed || o.startedAt == nil {
		return 0, 0, "nothing: the pod never ran"
	}
	hours := o.hours + out.extended
	paid := o.amount + int64(out.extended)*o.hourly // the order (fee and hours) and each extension's hour
	var from time.Time
	switch {
	case !out.stoppedAt.IsZero():
		from, why = out.stoppedAt, "the fee and the minutes used up to its owner's Stop; every unused minute refunded"
	case !out.killedAt.IsZero():
		from, why = out.killedAt, "the fee and the minutes used up to when it was found dead; every unused minute refunded, as for a Stop"
	default:
		return paid - out.manualCent, paid - out.manualCent, "every hour bought: it runs"
	}
	to := from
	if o.endedAt != nil && o.endedAt.After(from) {
		to = *o.endedAt
	}
	keptAt := func(t time.Time) int64 {
		ran := t.Sub(*o.startedAt)
		used := int64(1) // a pod that ran has used a minute
		if ran > 0 {
			used = int64((ran + time.Minute - 1) / time.Minute) // the minutes begun
		}
		unused := int64(hours)*60 - used
		if unused <= 0 {
			return paid
		}
		return paid - unused*o.hourly/60
	}
	return keptAt(from) - out.manualCent, keptAt(to) - out.manualCent, why
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
	for _, rec := range r.front.runpod.Sim.Records() {
		byID[rec.ID] = rec.Status
		launches[rec.Name]++
	}

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
		if out.ran && out.stoppedAt.IsZero() && out.killedAt.IsZero() && o.podStatus != gpubroker.PodRunning {
			add("%s: its pod should still run, it is %s", who, o.podStatus)
		}
		// Money.
		captured, refunded, problems := r.money(o)
		for _, p := range problems {
			add("%s: %s", who, p)
		}
		lo, hi, why := expectedKept(out, o)
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
		// Emails: exactly one of each that the journey called for.
		ran := o.startedAt != nil
		ended := ran && o.podStatus != gpubroker.PodRunning
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
