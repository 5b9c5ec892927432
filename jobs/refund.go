package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/postgres"
)

// RefundArgs refunds a captured order whose pod could not be started.
type RefundArgs struct {
	PodID  string `json:"pod_id"`
	Reason string `json:"reason"`
}

// Kind implements river.JobArgs.
func (RefundArgs) Kind() string { return "refund" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 25, Queue: QueuePayments}
}

// RefundWorker refunds exactly once: the idempotency key refund-<order> makes Stripe refund
// once, and the order moves captured → refunded once.
type RefundWorker struct {
	river.WorkerDefaults[RefundArgs]
	d *Deps
}

// NextRetry implements the RetryDelay override.
func (w *RefundWorker) NextRetry(*river.Job[RefundArgs]) time.Time { return w.d.nextRetry() }

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
	refundID := ""
	r, err := d.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: *o.PaymentIntentID, Key: "refund-" + o.ID, IdempotencyKey: "refund-" + o.ID})
	switch {
	case err == nil:
		refundID = r.ID
	case errors.Is(err, gpubroker.ErrPaymentState):
		// Already refunded by an earlier attempt whose answer we lost.
	default:
		return fmt.Errorf("error refunding: %w", err)
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		ok, err := postgres.MoveOrder(ctx, tx, o.ID, gpubroker.OrderCaptured, gpubroker.OrderRefunded, d.now())
		if err != nil || !ok {
			return err
		}
		if refundID != "" {
			if err := postgres.SetRefund(ctx, tx, o.ID, refundID); err != nil {
				return err
			}
		}
		for _, from := range []string{gpubroker.PodProvisioning, gpubroker.PodDeploying} {
			if _, err := postgres.MovePod(ctx, tx, pod.ID, from, gpubroker.PodFailed, map[string]any{"error": job.Args.Reason + " Your payment was refunded in full."}); err != nil {
				return err
			}
		}
		if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(o.AccountID), OrderID: o.ID, PodID: pod.ID, Action: "order.refunded", Detail: map[string]any{"refund": refundID, "reason": job.Args.Reason}}); err != nil {
			return err
		}
		return QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailRefunded, o.Email, "refunded:"+o.ID, mailData(d, o.Name, o.Email, pod, job.Args.Reason))
	})
}
