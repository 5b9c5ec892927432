package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"gpubroker"
	"gpubroker/postgres"
)

// CaptureArgs captures an order's payment when its pod is deployed.
type CaptureArgs struct {
	PodID string `json:"pod_id"`
}

// Kind implements river.JobArgs.
func (CaptureArgs) Kind() string { return "capture" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CaptureArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), MaxAttempts: 10, Queue: QueuePayments}
}

// CaptureWorker captures the hold with the idempotency key capture-<order>, so however often
// it runs Stripe captures once; only after a successful capture is provisioning enqueued.
type CaptureWorker struct {
	river.WorkerDefaults[CaptureArgs]
	d *Deps
}

// NextRetry implements the RetryDelay override.
func (w *CaptureWorker) NextRetry(*river.Job[CaptureArgs]) time.Time { return w.d.nextRetry() }

// Work implements river.Worker.
func (w *CaptureWorker) Work(ctx context.Context, job *river.Job[CaptureArgs]) error {
	d := w.d
	pod, err := postgres.GetPod(ctx, d.Pool, job.Args.PodID)
	if err != nil {
		return err
	}
	if pod.Status != gpubroker.PodDeploying {
		return nil
	}
	o, err := postgres.GetOrder(ctx, d.Pool, pod.OrderID)
	if err != nil {
		return err
	}
	switch o.Status {
	case gpubroker.OrderFree:
		return w.captured(ctx, pod, o, false)
	case gpubroker.OrderCaptured:
		return w.captured(ctx, pod, o, false)
	case gpubroker.OrderReleased:
		return releaseOrder(ctx, d, o.ID, "")
	case gpubroker.OrderAuthorized:
	default:
		return river.JobCancel(fmt.Errorf("order %s is %s: nothing to capture", o.ID, o.Status))
	}
	pi, err := d.Payments.Capture(ctx, *o.PaymentIntentID, "capture-"+o.ID)
	if errors.Is(err, gpubroker.ErrPaymentState) && pi != nil {
		switch pi.Status {
		case gpubroker.PISucceeded:
			err = nil // captured by an earlier attempt whose answer we lost
		case gpubroker.PICanceled:
			d.Logger.WarnContext(ctx, "capture found the hold released", "order_id", o.ID)
			return releaseOrder(ctx, d, o.ID, "Your card hold had been released before deploy, so nothing was charged. Start a new order to deploy.")
		}
	}
	if err != nil {
		if job.Attempt >= job.MaxAttempts {
			// Stripe has been failing for hours: hand the pod back so the user can deploy again
			// later; the hold stays, and the release job frees it on day 6 if they never do.
			return w.giveBack(ctx, job, pod, err)
		}
		return fmt.Errorf("error capturing payment: %w", err)
	}
	if pi.Status != gpubroker.PISucceeded {
		return fmt.Errorf("payment intent %s is %s after capture", pi.ID, pi.Status)
	}
	return w.captured(ctx, pod, o, true)
}

// captured moves the order to captured and the pod to provisioning, with the provision job, in
// one transaction.
func (w *CaptureWorker) captured(ctx context.Context, pod *postgres.Pod, o *gpubroker.Order, audit bool) error {
	d := w.d
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		now := d.now()
		if o.Status == gpubroker.OrderAuthorized {
			if _, err := postgres.MoveOrder(ctx, tx, o.ID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, now); err != nil {
				return err
			}
		}
		ok, err := postgres.MovePod(ctx, tx, pod.ID, gpubroker.PodDeploying, gpubroker.PodProvisioning, map[string]any{"captured_at": now})
		if err != nil || !ok {
			return err
		}
		if audit {
			if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: o.ID, PodID: pod.ID, Action: "order.captured", Detail: map[string]any{"amount_cents": o.AmountCents}}); err != nil {
				return err
			}
		}
		_, err = client(ctx).InsertTx(ctx, tx, ProvisionArgs{PodID: pod.ID}, nil)
		return err
	})
}

// giveBack returns a pod whose capture kept failing to configured, so Deploy works again. The
// job completes in the same transaction: a Deploy right after must be able to enqueue a new
// capture, which uniqueness would refuse while this one still counted as running.
func (w *CaptureWorker) giveBack(ctx context.Context, job *river.Job[CaptureArgs], pod *postgres.Pod, cause error) error {
	d := w.d
	d.Logger.ErrorContext(ctx, "capture failed for good; the pod can be deployed again", "pod_id", pod.ID, "error", cause)
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		ok, err := postgres.MovePod(ctx, tx, pod.ID, gpubroker.PodDeploying, gpubroker.PodConfigured, map[string]any{"error": "We could not reach our payment processor. Nothing was charged; please press Deploy again."})
		if err != nil || !ok {
			return err
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return err
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: "pod.capture_failed", Detail: map[string]any{"error": cause.Error()}})
	})
}
