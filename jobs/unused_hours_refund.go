package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// UnusedHoursRefundArgs is tasks.UnusedHoursRefundArgs: the workers' name for it.
type UnusedHoursRefundArgs = tasks.UnusedHoursRefundArgs

// UnusedHoursRefundWorker refunds ⌊(minutes bought − minutes used) × the hourly rate / 60⌋; the
// plan fee is kept (gpubroker.UnusedMinutesCents). It first plans the refund in the ledger, once,
// under the pod's lock: spread over the order's payments newest first (extensions before the
// order's own), each share under its own key refund-<payment>-<n> and never above what the
// payment captured minus what was already refunded of it. It then makes each planned refund as jobs/refund.go makes a
// full one: under that key first; a retry after a failure first asks Stripe for the refund by its
// key (FindRefund) and only refunds again, under a new idempotency key (gpubroker.RetryKey),
// when it is not there. Once every share is made, the customer is emailed the amount.
type UnusedHoursRefundWorker struct {
	river.WorkerDefaults[UnusedHoursRefundArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *UnusedHoursRefundWorker) Work(ctx context.Context, job *river.Job[UnusedHoursRefundArgs]) error {
	d, a := w.d, job.Args
	extension := a.Reason == gpubroker.RefundLateExtension || a.Reason == gpubroker.RefundOverLimit
	if a.Reason != gpubroker.RefundEarlyStop && a.Reason != gpubroker.RefundPodDied && !extension {
		return river.JobCancel(fmt.Errorf("unknown refund reason %q", a.Reason))
	}
	var used, bought int
	if !extension { // an extension's full refund was planned when it was paid
		if err := postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			var err error
			used, bought, err = lifecycle.PlanUnusedHoursRefund(ctx, tx, d.Logger, d.Clock, a)
			return err
		}); err != nil {
			return err
		}
	}
	refunds, err := postgres.PodRefunds(ctx, d.Pool, a.PodID, a.Reason)
	if err != nil || len(refunds) == 0 {
		return err
	}
	var total int64
	for _, r := range refunds {
		total += r.AmountCents
		if r.StripeRefundID != nil {
			continue
		}
		if err := w.refund(ctx, job, r); err != nil {
			return w.failed(ctx, job, r, err)
		}
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.LockPod(ctx, tx, a.PodID)
		if err != nil {
			return err
		}
		action := gpubroker.RefundedAction(a.Reason)
		if done, err := postgres.HasAudit(ctx, tx, pod.ID, action); err != nil || done {
			return err
		}
		if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: action,
			Detail: map[string]any{"amount_cents": total, "minutes_bought": bought, "minutes_used": used, "refunds": len(refunds)}}); err != nil {
			return err
		}
		if a.Reason == gpubroker.RefundEarlyStop {
			return nil // the pod's end email says the amount (TerminateWorker)
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		plan, _ := d.Catalog.Plan(pod.Plan)
		md := mailData(d, o.Name, o.Email, pod, unusedReason(a.Reason, pod, bought, used, total, plan.MaxHours))
		md.Pod.AmountCents = total
		return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailRefunded, o.Email, string(a.Reason)+"_refund:"+pod.ID, md)
	})
}

// unusedReason is the refund email's explanation for a pod that died (bought and used are
// minutes, total the refund), an extension paid after its pod had stopped, or one that would
// have taken it past its plan's limit.
func unusedReason(reason gpubroker.RefundReason, pod *gpubroker.Pod, bought, used int, total int64, maxHours int) string {
	switch reason {
	case gpubroker.RefundLateExtension:
		return "Your payment for more hours arrived after your pod had stopped, so nothing ran on it: we refunded it in full."
	case gpubroker.RefundOverLimit:
		return "Your payment for more hours arrived after another extension of this pod had been paid, and together they would pass your plan's limit of " +
			hoursWord(maxHours) + " per pod. So it did not extend your pod: we refunded it in full."
	}
	return "Your pod stopped working after " + minutesWord(used) + " of the " + minutesWord(bought) + " you paid for, so we refunded the " +
		minutesWord(bought-used) + " it did not use at " + mail.Money(pod.HourlyCents) + " an hour, rounded down to the cent: " + mail.Money(total) + "." +
		feeKept(pod)
}

// earlyStopNote is what the pod's end email says about an early stop's refund ("" for none).
func earlyStopNote(refunds []postgres.LedgerRefund, pod *gpubroker.Pod) string {
	var total int64
	for _, r := range refunds {
		total += r.AmountCents
	}
	if total == 0 || pod.HourlyCents <= 0 {
		return ""
	}
	return "You stopped it early, so we are refunding " + mail.Money(total) + " to your card: every minute you paid for and did not use, at " +
		mail.Money(pod.HourlyCents) + " an hour, rounded down to the cent." + feeKept(pod) + " Refunds usually reach your account within 5 to 10 business days."
}

// feeKept says the plan fee is not refunded, when the order paid one.
func feeKept(pod *gpubroker.Pod) string {
	if gpubroker.PlanFeeCents(pod.AmountCents, pod.Hours, pod.HourlyCents) == 0 {
		return ""
	}
	return " The plan fee is not refunded."
}

func minutesWord(n int) string {
	if n == 1 {
		return "1 minute"
	}
	return strconv.Itoa(n) + " minutes"
}

func hoursWord(n int) string {
	if n == 1 {
		return "1 hour"
	}
	return strconv.Itoa(n) + " hours"
}

// refund makes one planned refund exactly once and records it.
func (w *UnusedHoursRefundWorker) refund(ctx context.Context, job *river.Job[UnusedHoursRefundArgs], lr postgres.LedgerRefund) error {
	d := w.d
	var r *gpubroker.Refund
	var err error
	if job.Attempt > 1 {
		if r, err = d.Payments.FindRefund(ctx, lr.PaymentIntentID, lr.Key); err != nil {
			return fmt.Errorf("error looking for the refund an earlier attempt may have made: %w", err)
		}
	}
	if r == nil {
		r, err = d.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: lr.PaymentIntentID, Amount: lr.AmountCents, Key: lr.Key,
			IdempotencyKey: gpubroker.RetryKey(lr.Key, job.ID, job.Attempt), Reason: "requested_by_customer"})
		if err != nil {
			if errors.Is(err, gpubroker.ErrPaymentState) {
				// Refunded in full (by hand?) or not captured: never refund above what was captured.
				return fmt.Errorf("stripe refuses a refund of %d on %s: %w", lr.AmountCents, lr.PaymentIntentID, err)
			}
			return fmt.Errorf("error refunding: %w", err)
		}
	}
	if r.Amount != 0 && r.Amount != lr.AmountCents {
		return fmt.Errorf("refund %s under key %s is of %d, the ledger planned %d", r.ID, lr.Key, r.Amount, lr.AmountCents)
	}
	return postgres.MarkRefundMade(ctx, d.Pool, lr.ID, r.ID, d.now())
}

// failed records a failed refund attempt (error log and a refund.failed audit event, which
// /metrics counts) and returns the cause, so River retries.
func (w *UnusedHoursRefundWorker) failed(ctx context.Context, job *river.Job[UnusedHoursRefundArgs], lr postgres.LedgerRefund, cause error) error {
	w.d.Logger.ErrorContext(ctx, "refund failed; the customer is owed money", "pod_id", job.Args.PodID, "refund_key", lr.Key, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", cause)
	err := postgres.Tx(ctx, w.d.Pool, func(tx pgx.Tx) error {
		return postgres.Audit(ctx, tx, postgres.AuditEvent{PodID: job.Args.PodID, Action: gpubroker.ActionRefundFailed,
			Detail: map[string]any{"attempt": job.Attempt, "max_attempts": job.MaxAttempts, "amount_cents": lr.AmountCents, "key": lr.Key, "reason": job.Args.Reason, "error": cause.Error()}})
	})
	return errors.Join(cause, err)
}
