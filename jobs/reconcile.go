package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// ReconcileArgs is tasks.ReconcileArgs: the workers' name for it.
type ReconcileArgs = tasks.ReconcileArgs

// Reconciliation limits.
const (
	// reconcileBatch is how many orders one run compares with Stripe (one or a few API
	// calls each); the never-compared go first, then a sweep of the window in creation order
	// from where the last run stopped, so every order gets its turn.
	reconcileBatch = 200
	// strandedGrace is how long past the provisioning deadline a captured pod may sit in
	// provisioning with no job before the reconciler requeues it.
	strandedGrace = 5 * time.Minute
	// overdueGrace is how long past its paid end a pod may run before the reconciler ends it:
	// the scheduled terminate job runs at the end, so this only catches one that was lost,
	// cancelled or deleted.
	overdueGrace = 10 * time.Minute
)

// ReconcileWorker is the last line of the promise that a crash, an outage or a lost job never
// loses money or leaves a pod running: it compares the three ledgers (our database, Stripe's
// PaymentIntents, the providers' instances) and repairs or reports what slipped. It never
// charges; it only ends instances, queues refunds and provisioning that should exist, and
// reports disagreements. Each finding is audited (reconcile.*, counted in /metrics and shown on
// /ops/) and logged at error level:
//
//   - an instance at a provider named as ours (gpubroker-<pod>) whose pod is gone, ended, or
//     runs another instance: terminated (reconcile.orphan_instance);
//   - a captured order whose pod never ran, is failed or stuck provisioning, with no refund
//     made or queued and no job alive: its refund (or provisioning, which gives up into a
//     refund past its deadline) is queued (reconcile.refund_queued, reconcile.provision_requeued);
//     a refund job that ran out of attempts is reported instead, since retrying it is a
//     person's call (a dispute);
//   - a running pod 10 minutes past its paid end with no terminate job alive and no extension
//     that may still move its end (a checkout open, or paid and not yet processed): ended
//     through the terminate job, as at its scheduled end (reconcile.overdue_pod);
//   - a planned partial refund (early stop, dead pod) never made and no job making it: requeued;
//   - a PaymentIntent whose state or amounts disagree with the order and its ledger:
//     reported (orders.drift, reconcile.drift), never changed.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *ReconcileWorker) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	if job.Attempt > 1 {
		// A retry (after an error, a JOB_TIMEOUT or a rescue from a killed worker) compares
		// nothing: the next pass, an interval later, compares everything again, and a pass
		// that failed every attempt would end discarded and page ops for nothing. Its errors
		// stay on the job for ops to read.
		w.d.Logger.WarnContext(ctx, "reconcile pass failed; the next pass compares again", "attempt", job.Attempt)
		return nil
	}
	// One pass at a time. Passes are unique within their period only (a killed worker's pass
	// must not keep the next ones out), so a pass that outlasts its interval could meet the
	// next one, and both would queue and audit the same repairs; the second skips instead. The
	// lock is a transaction's, held open for the pass: a killed worker's goes with its
	// connection.
	lock, err := w.d.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Rollback(context.WithoutCancel(ctx)) }()
	var mine bool
	if err := lock.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('reconcile'))`).Scan(&mine); err != nil {
		return err
	}
	if !mine {
		w.d.Logger.InfoContext(ctx, "another reconcile pass is running; this one compares nothing")
		return nil
	}
	return errors.Join(w.instances(ctx), w.overdue(ctx), w.stranded(ctx), w.unmadeRefunds(ctx), w.payments(ctx))
}

// report logs a finding at error level and audits it, with the job that repairs it (if any)
// in the same transaction.
func (w *ReconcileWorker) report(ctx context.Context, e postgres.AuditEvent, job river.JobArgs) error {
	return postgres.Tx(ctx, w.d.Pool, func(tx pgx.Tx) error {
		if job != nil {
			if _, err := client(ctx).InsertTx(ctx, tx, job, nil); err != nil {
				return err
			}
		}
		w.d.Logger.ErrorContext(ctx, "reconciler: "+string(e.Action), "order_id", e.OrderID, "pod_id", e.PodID, "detail", e.Detail)
		return postgres.Audit(ctx, tx, e)
	})
}

// instances ends instances at the providers that no live pod of ours owns.
func (w *ReconcileWorker) instances(ctx context.Context) error {
	d := w.d
	if d.Broker == nil {
		return nil
	}
	var errs []error
	for _, p := range d.Broker.Providers() {
		cctx, cancel := context.WithTimeout(ctx, d.StepTimeout)
		list, err := p.ListInstances(cctx)
		cancel()
		if err != nil {
			// A provider that cannot answer now is asked again on the next run.
			d.Logger.WarnContext(ctx, "reconciler could not list instances", "provider", p.Name(), "error", err)
			continue
		}
		var ids []string
		for _, in := range list {
			if id, ok := strings.CutPrefix(in.Name, InstanceName("")); ok {
				ids = append(ids, id)
			}
		}
		pods, err := postgres.PodsByID(ctx, d.Pool, ids)
		if err != nil {
			return err
		}
		for _, in := range list {
			podID, ours := strings.CutPrefix(in.Name, InstanceName(""))
			if !ours {
				continue // another integration's instance on the same account
			}
			pod, known := pods[podID]
			var why string
			switch {
			case !known:
				why = "no pod of ours has this id"
			case pod.Status == gpubroker.PodProvisioning:
				continue // provisioning launches, finds and records instances itself
			case pod.Status != gpubroker.PodRunning && pod.Status != gpubroker.PodTerminating:
				why = "its pod is " + string(pod.Status)
			case pod.Provider != p.Name() || pod.InstanceID != in.ID:
				why = fmt.Sprintf("its pod runs %s/%s", pod.Provider, pod.InstanceID)
			default:
				continue
			}
			// One termination at a time: a finding already under repair is not reported again.
			if busy, err := postgres.JobAlive(ctx, d.Pool, TerminateInstanceArgs{}.Kind(), map[string]any{"provider": p.Name(), "instance_id": in.ID}); err != nil || busy {
				errs = append(errs, err)
				continue
			}
			e := postgres.AuditEvent{PodID: podID, Action: gpubroker.ActionReconcileOrphanInstance,
				Detail: map[string]any{"provider": p.Name(), "instance": in.ID, "state": string(in.State), "why": why}}
			if !known {
				e.PodID = "" // the audit trail holds our pods' ids only
				e.Detail["name"] = in.Name
			}
			errs = append(errs, w.report(ctx, e, TerminateInstanceArgs{PodID: podID, Provider: p.Name(), InstanceID: in.ID}))
		}
	}
	return errors.Join(errs...)
}

// overdue ends running pods past their paid end that nothing is ending.
func (w *ReconcileWorker) overdue(ctx context.Context) error {
	now := w.d.now()
	list, err := postgres.OverduePods(ctx, w.d.Pool, now.Add(-overdueGrace), now.Add(-gpubroker.CheckoutLifetime))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range list {
		e := postgres.AuditEvent{AccountID: p.AccountID, OrderID: p.OrderID, PodID: p.PodID, Action: gpubroker.ActionReconcileOverduePod, Detail: map[string]any{"ends_at": p.EndsAt}}
		errs = append(errs, w.report(ctx, e, TerminateArgs{PodID: p.PodID, EndsAt: &p.EndsAt}))
	}
	return errors.Join(errs...)
}

// stranded queues what a captured order without a running pod, a refund or a live job needs.
func (w *ReconcileWorker) stranded(ctx context.Context) error {
	d := w.d
	list, err := postgres.StrandedPods(ctx, d.Pool, d.now().Add(-d.ProvisionDeadline-strandedGrace))
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range list {
		e := postgres.AuditEvent{AccountID: s.AccountID, OrderID: s.OrderID, PodID: s.PodID, Detail: map[string]any{"pod_status": string(s.Status)}}
		switch {
		case s.RefundDiscarded:
			errs = append(errs, w.drift(ctx, s.OrderID, s.AccountID, "the refund job ran out of attempts: the customer is owed a full refund (retry it in the River UI)"))
		case s.Status == gpubroker.PodProvisioning:
			e.Action = "reconcile.provision_requeued"
			errs = append(errs, w.report(ctx, e, ProvisionArgs{PodID: s.PodID}))
		default:
			e.Action = "reconcile.refund_queued"
			errs = append(errs, w.report(ctx, e, RefundArgs{PodID: s.PodID, Reason: "We could not start your GPU."}))
		}
	}
	return errors.Join(errs...)
}

// unmadeRefunds requeues planned partial refunds that nothing is making.
func (w *ReconcileWorker) unmadeRefunds(ctx context.Context) error {
	d := w.d
	list, err := postgres.UnmadeRefunds(ctx, d.Pool, d.now().Add(-strandedGrace))
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range list {
		e := postgres.AuditEvent{OrderID: u.OrderID, PodID: u.PodID, Action: gpubroker.ActionReconcileRefundQueued, Detail: map[string]any{"reason": u.Reason, "planned_at": u.PlannedAt}}
		// The refund is already planned (amounts and keys fixed), so the job only makes it.
		errs = append(errs, w.report(ctx, e, UnusedHoursRefundArgs{PodID: u.PodID, Reason: u.Reason, StoppedAt: u.PlannedAt}))
	}
	return errors.Join(errs...)
}

// payments compares a batch of orders with their PaymentIntents.
func (w *ReconcileWorker) payments(ctx context.Context) error {
	d := w.d
	if d.Payments == nil {
		return nil
	}
	now := d.now()
	orders, err := postgres.OrdersToReconcile(ctx, d.Pool, now.Add(-d.ReconcileInterval/2), reconcileBatch)
	if err != nil {
		return err
	}
	// The sweep goes on after the last order of the batch, even past one Stripe did not
	// answer, which is compared again when the sweep comes back to it: waiting there would
	// stop the sweep for good at an order Stripe never answers for (make scale's seeded
	// PaymentIntents, unknown to the stand-in, held it at the window's first order).
	var sweptTo time.Time
	for _, o := range orders {
		if o.Swept {
			sweptTo = o.CreatedAt
		}
		found, ok := w.compare(ctx, o)
		if !ok {
			continue // Stripe did not answer: compared again next sweep (or next run, if never compared)
		}
		if found != "" && found != o.Drift {
			if err := w.drift(ctx, o.ID, o.AccountID, found); err != nil {
				return err
			}
		}
		if err := postgres.MarkReconciled(ctx, d.Pool, o.ID, found, now); err != nil {
			return err
		}
	}
	if sweptTo.IsZero() {
		return nil
	}
	return postgres.AdvanceSweep(ctx, d.Pool, sweptTo)
}

// drift reports a disagreement that needs a person: orders.drift, an error log and the audit
// event reconcile.drift.
func (w *ReconcileWorker) drift(ctx context.Context, orderID, accountID, what string) error {
	if err := postgres.MarkReconciled(ctx, w.d.Pool, orderID, what, w.d.now()); err != nil {
		return err
	}
	return w.report(ctx, postgres.AuditEvent{AccountID: accountID, OrderID: orderID, Action: gpubroker.ActionReconcileDrift, Detail: map[string]any{"drift": what}}, nil)
}

// compare returns what disagrees between the order and Stripe ("" when nothing does), and false
// when Stripe could not be asked.
func (w *ReconcileWorker) compare(ctx context.Context, o postgres.ReconcileOrder) (string, bool) {
	pi, err := w.d.Payments.GetPaymentIntent(ctx, o.PaymentIntentID)
	if err != nil {
		w.d.Logger.WarnContext(ctx, "reconciler could not fetch a payment intent", "order_id", o.ID, "payment_intent", o.PaymentIntentID, "error", err)
		return "", false
	}
	want := map[gpubroker.OrderStatus]string{
		gpubroker.OrderAuthorized: gpubroker.PIRequiresCapture,
		gpubroker.OrderReleased:   gpubroker.PICanceled,
		gpubroker.OrderCaptured:   gpubroker.PISucceeded,
		gpubroker.OrderRefunded:   gpubroker.PISucceeded,
	}[o.Status]
	if pi.Status != want {
		return fmt.Sprintf("the order is %s but its payment intent %s is %s at Stripe", o.Status, pi.ID, pi.Status), true
	}
	var found []string
	for _, p := range o.Payments {
		got := pi
		if p.PaymentIntentID != pi.ID {
			if got, err = w.d.Payments.GetPaymentIntent(ctx, p.PaymentIntentID); err != nil {
				return "", false
			}
		}
		switch {
		case got.Status != gpubroker.PISucceeded:
			found = append(found, fmt.Sprintf("%s payment %s is %s at Stripe", p.Kind, got.ID, got.Status))
		case got.AmountReceived != p.AmountCents:
			found = append(found, fmt.Sprintf("%s payment %s: Stripe captured %d, our ledger %d", p.Kind, got.ID, got.AmountReceived, p.AmountCents))
		case got.AmountRefunded != p.RefundedCents:
			found = append(found, fmt.Sprintf("%s payment %s: Stripe refunded %d, our ledger %d", p.Kind, got.ID, got.AmountRefunded, p.RefundedCents))
		}
	}
	return strings.Join(found, "; "), true
}
