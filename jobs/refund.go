package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// RefundArgs is tasks.RefundArgs: the workers' name for it.
type RefundArgs = tasks.RefundArgs

// What the pod's note says about the money while the refund is pending and once it is made.
const (
	refundPending = "We are refunding your payment in full; the refund is pending, and we will email you when it is made."
	refundMade    = "Your payment was refunded in full."
)

// RefundWorker refunds exactly once. The refund is named refund-<order> (its
// metadata[gpubroker_key]) and first requested under that idempotency key. A retry after a
// failure first lists the PaymentIntent's refunds and looks for ours, since the answer may
// have been lost after Stripe refunded, or Stripe may have stored a 500 it would replay for a
// day; only when ours is not there does it refund again, under a new key (gpubroker.RetryKey).
// The order moves captured → refunded once, and the pod's note then says the refund was made.
// Every failed attempt is logged at error level and audited (refund.failed), which /metrics
// counts: a customer is owed money.
type RefundWorker struct {
	river.WorkerDefaults[RefundArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *RefundWorker) Work(ctx context.Context, job *river.Job[RefundArgs]) error {
	d := w.d
	pod, err := postgres.GetPod(ctx, d.Pool, job.Args.PodID)
	if err != nil {
		return err
	}
	o, err := postgres.GetOrder(ctx, d.Pool, pod.OrderID)
	if err != nil {
		return err
	}
	if o.Status != gpubroker.OrderCaptured {
		return nil
	}
	piID, key := *o.PaymentIntentID, "refund-"+o.ID
	var r *gpubroker.Refund
	if job.Attempt > 1 {
		if r, err = d.Payments.FindRefund(ctx, piID, key); err != nil {
			return w.failed(ctx, job, o, pod, fmt.Errorf("error looking for the refund an earlier attempt may have made: %w", err))
		}
	}
	if r == nil {
		r, err = d.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: piID, Key: key, IdempotencyKey: gpubroker.RetryKey(key, job.ID, job.Attempt)})
		switch {
		case err == nil:
		case errors.Is(err, gpubroker.ErrPaymentState):
			// Already refunded in full, by an earlier attempt whose answer we lost or by hand.
			r = nil
		default:
			return w.failed(ctx, job, o, pod, fmt.Errorf("error refunding: %w", err))
		}
	}
	refundID := ""
	if r != nil {
		refundID = r.ID
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		ok, err := lifecycle.MoveOrder(ctx, tx, o, pod.ID, gpubroker.OrderCaptured, gpubroker.OrderRefunded, d.now(), map[string]any{"refund": refundID, "reason": job.Args.Reason})
		if err != nil || !ok {
			return err
		}
		if refundID != "" {
			if err := postgres.SetRefund(ctx, tx, o.ID, refundID); err != nil {
				return err
			}
		}
		if o.PaymentIntentID != nil && o.CapturedAt != nil {
			if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentOrder, *o.PaymentIntentID, o.AmountCents, o.Hours, o.Currency, *o.CapturedAt); err != nil {
				return err
			}
		}
		if err := postgres.RecordFullRefund(ctx, tx, o.ID, pod.ID, key, refundID, d.now()); err != nil {
			return err
		}
		// The pod is failed (gave up, or the hold release found a capture); older rows may
		// still be provisioning or deploying.
		for _, from := range []gpubroker.PodStatus{gpubroker.PodFailed, gpubroker.PodProvisioning, gpubroker.PodDeploying} {
			if _, err := lifecycle.MovePod(ctx, tx, pod, from, gpubroker.PodFailed, gpubroker.PodUpdate{Error: gpubroker.Ptr(job.Args.Reason + " " + refundMade)}, nil); err != nil {
				return err
			}
		}
		return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailRefunded, o.Email, "refunded:"+o.ID, mailData(d, o.Name, o.Email, pod, job.Args.Reason))
	})
}

// failed records a failed refund attempt (error log and a refund.failed audit event) and
// returns the cause, so River retries.
func (w *RefundWorker) failed(ctx context.Context, job *river.Job[RefundArgs], o *gpubroker.Order, pod *gpubroker.Pod, cause error) error {
	w.d.Logger.ErrorContext(ctx, "refund failed; the customer is owed money", "order_id", o.ID, "pod_id", pod.ID, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", cause)
	err := postgres.Tx(ctx, w.d.Pool, func(tx pgx.Tx) error {
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(o.AccountID), OrderID: o.ID, PodID: pod.ID, Action: gpubroker.ActionRefundFailed,
			Detail: map[string]any{"attempt": job.Attempt, "max_attempts": job.MaxAttempts, "amount_cents": o.AmountCents, "error": cause.Error()}})
	})
	return errors.Join(cause, err)
}
