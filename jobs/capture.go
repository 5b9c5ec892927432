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
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// CaptureArgs is tasks.CaptureArgs: the workers' name for it.
type CaptureArgs = tasks.CaptureArgs

// CaptureWorker captures the hold, first with the idempotency key capture-<order>. A retry
// after a failure first fetches the PaymentIntent and decides from its state (Stripe replays a
// stored 500 for 24 hours under the same key, and a lost answer may hide a capture), and
// captures again only under a new key (gpubroker.RetryKey) when the hold is still uncaptured.
// Only after a successful capture is provisioning enqueued.
type CaptureWorker struct {
	river.WorkerDefaults[CaptureArgs]
	d *Deps
}

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
		return w.captured(ctx, pod, o)
	case gpubroker.OrderCaptured:
		return w.captured(ctx, pod, o)
	case gpubroker.OrderReleased:
		return releaseOrder(ctx, d, o.ID, "")
	case gpubroker.OrderAuthorized:
	default:
		return river.JobCancel(fmt.Errorf("order %s is %s: nothing to capture", o.ID, o.Status))
	}
	piID := *o.PaymentIntentID
	if job.Attempt > 1 {
		// An earlier attempt failed. Stripe may have captured without our hearing it, or
		// stored a 500 under the key that it would replay for a day: decide from the
		// PaymentIntent, and capture again (under a new key) only if it is still uncaptured.
		pi, err := d.Payments.GetPaymentIntent(ctx, piID)
		if err != nil {
			return w.unknown(ctx, job, pod, fmt.Errorf("error fetching the payment intent after a failed capture: %w", err))
		}
		if done, err := w.settle(ctx, job, pod, o, pi); done {
			return err
		}
	}
	pi, err := d.Payments.Capture(ctx, piID, gpubroker.RetryKey("capture-"+o.ID, job.ID, job.Attempt))
	if errors.Is(err, gpubroker.ErrPaymentState) && pi != nil {
		if done, err := w.settle(ctx, job, pod, o, pi); done {
			return err
		}
	}
	if err != nil {
		if job.Attempt >= job.MaxAttempts {
			return w.lastAttempt(ctx, job, pod, o, err)
		}
		return fmt.Errorf("error capturing payment: %w", err)
	}
	if pi.Status != gpubroker.PISucceeded {
		return fmt.Errorf("payment intent %s is %s after capture", pi.ID, pi.Status)
	}
	return w.captured(ctx, pod, o)
}

// settle acts on a PaymentIntent whose state decides the capture: succeeded (an earlier
// attempt captured and we lost the answer) goes on to provisioning, canceled records the
// released hold. It reports false for requires_capture: the capture is still to be made.
func (w *CaptureWorker) settle(ctx context.Context, job *river.Job[CaptureArgs], pod *gpubroker.Pod, o *gpubroker.Order, pi *gpubroker.PaymentIntent) (bool, error) {
	switch pi.Status {
	case gpubroker.PISucceeded:
		return true, w.captured(ctx, pod, o)
	case gpubroker.PICanceled:
		w.d.Logger.WarnContext(ctx, "capture found the hold released", "order_id", o.ID)
		return true, releaseOrder(ctx, w.d, o.ID, "Your card hold had already been released when you pressed Deploy. Start a new order to deploy.")
	case gpubroker.PIRequiresCapture:
		return false, nil
	}
	return true, w.unknown(ctx, job, pod, fmt.Errorf("payment intent %s is %s, neither captured nor capturable", pi.ID, pi.Status))
}

// lastAttempt runs when the last capture attempt failed. The failure may be a timeout after
// Stripe captured, so before handing the pod back (and telling the user nothing was charged)
// it asks Stripe: captured goes on to provisioning, an untouched hold hands the pod back, and
// anything uncertain keeps the job alive.
func (w *CaptureWorker) lastAttempt(ctx context.Context, job *river.Job[CaptureArgs], pod *gpubroker.Pod, o *gpubroker.Order, cause error) error {
	pi, err := w.d.Payments.GetPaymentIntent(ctx, *o.PaymentIntentID)
	if err != nil {
		return w.unknown(ctx, job, pod, errors.Join(cause, fmt.Errorf("error fetching the payment intent: %w", err)))
	}
	if done, err := w.settle(ctx, job, pod, o, pi); done {
		return err
	}
	return w.giveBack(ctx, job, pod, cause)
}

// unknown handles a capture whose outcome Stripe has not told us: an ordinary retry, except on
// the last attempt, where the job snoozes (which uses no attempt) rather than end with the
// money's state unknown: the pod is neither given back nor provisioned until Stripe answers.
func (w *CaptureWorker) unknown(ctx context.Context, job *river.Job[CaptureArgs], pod *gpubroker.Pod, err error) error {
	if job.Attempt < job.MaxAttempts {
		return err
	}
	w.d.Logger.ErrorContext(ctx, "last capture attempt cannot tell whether Stripe captured; asking again later", "pod_id", pod.ID, "order_id", pod.OrderID, "error", err)
	return river.JobSnooze(w.d.retryLater())
}

// retryLater is how long a job waits before asking Stripe again when it cannot fail for good.
func (d *Deps) retryLater() time.Duration {
	if d.RetryDelay > 0 {
		return d.RetryDelay
	}
	return 5 * time.Minute
}

// captured moves the order to captured and the pod to provisioning, with the provision job, in
// one transaction.
func (w *CaptureWorker) captured(ctx context.Context, pod *gpubroker.Pod, o *gpubroker.Order) error {
	d := w.d
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		now := d.now()
		captured, capturedAt := o.Status == gpubroker.OrderCaptured, now
		if o.CapturedAt != nil {
			capturedAt = *o.CapturedAt
		}
		if o.Status == gpubroker.OrderAuthorized {
			moved, err := lifecycle.MoveOrder(ctx, tx, o, pod.ID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, now, map[string]any{"amount_cents": o.AmountCents})
			if err != nil {
				return err
			}
			captured = moved
		}
		if captured && o.PaymentIntentID != nil {
			// The ledger's payment: refunds are spread over payments, never above them.
			if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentOrder, *o.PaymentIntentID, o.AmountCents, o.Hours, o.Currency, capturedAt); err != nil {
				return err
			}
		}
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodDeploying, gpubroker.PodProvisioning, gpubroker.PodUpdate{CapturedAt: &now}, nil)
		if err != nil || !ok {
			return err
		}
		_, err = client(ctx).InsertTx(ctx, tx, ProvisionArgs{PodID: pod.ID}, nil)
		return err
	})
}

// giveBack returns a pod whose capture kept failing to configured, so Deploy works again; it
// runs only once Stripe has shown the hold uncaptured, so "nothing was charged" is true. The
// job completes in the same transaction: a Deploy right after must be able to enqueue a new
// capture, which uniqueness would refuse while this one still counted as running.
func (w *CaptureWorker) giveBack(ctx context.Context, job *river.Job[CaptureArgs], pod *gpubroker.Pod, cause error) error {
	d := w.d
	d.Logger.ErrorContext(ctx, "capture failed for good; the pod can be deployed again", "pod_id", pod.ID, "error", cause)
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		ok, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodDeploying, gpubroker.PodConfigured,
			gpubroker.PodUpdate{Error: gpubroker.Ptr("We could not reach our payment processor. Nothing was charged (your card is still only on hold); please press Deploy again.")},
			map[string]any{"error": cause.Error()})
		if err != nil || !ok {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}
