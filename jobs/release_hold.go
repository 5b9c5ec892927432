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

// ReleaseHoldArgs is tasks.ReleaseHoldArgs: the workers' name for it.
type ReleaseHoldArgs = tasks.ReleaseHoldArgs

// ReleaseHoldWorker cancels the PaymentIntent of an order that was never deployed, a margin
// before the card network would drop the hold anyway, and tells the user. Its idempotency key
// is release-<order>; a retry first fetches the PaymentIntent and cancels again only under a
// new key (gpubroker.RetryKey) when the hold is still there.
type ReleaseHoldWorker struct {
	river.WorkerDefaults[ReleaseHoldArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *ReleaseHoldWorker) Work(ctx context.Context, job *river.Job[ReleaseHoldArgs]) error {
	d := w.d
	o, err := postgres.GetOrder(ctx, d.Pool, job.Args.OrderID)
	if err != nil {
		return err
	}
	if o.Status != gpubroker.OrderAuthorized || o.PaymentIntentID == nil {
		return nil
	}
	// Claim the pod first, under its row lock: a Deploy that commits before this sees an
	// undeployed pod win the race; one that comes after finds the pod failed (409 hold_released).
	// What the money did is not known yet, so the pod's note says only what we are doing.
	var claimed bool
	err = postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.GetOrderPod(ctx, tx, o.ID)
		if err != nil {
			return err
		}
		if _, err := postgres.LockPod(ctx, tx, pod.ID); err != nil {
			return err
		}
		claimed, err = lifecycle.MovePod(ctx, tx, pod, gpubroker.PodConfigured, gpubroker.PodFailed,
			gpubroker.PodUpdate{Error: gpubroker.Ptr("You did not deploy before the hold on your card was due to lapse, so we are releasing it.")}, nil)
		if err != nil {
			return err
		}
		if !claimed {
			// Already failed by an earlier run of this job: go on to cancel. Deployed: leave it.
			claimed = pod.Status == gpubroker.PodFailed
		}
		return nil
	})
	if err != nil || !claimed {
		return err
	}
	piID := *o.PaymentIntentID
	var pi *gpubroker.PaymentIntent
	if job.Attempt > 1 {
		// An earlier attempt failed: its cancel may have happened unheard, or Stripe stored a
		// 500 under release-<order> that it would replay. Decide from the PaymentIntent.
		if pi, err = d.Payments.GetPaymentIntent(ctx, piID); err != nil {
			return fmt.Errorf("error fetching the payment intent after a failed release: %w", err)
		}
		if pi.Status == gpubroker.PIRequiresCapture || pi.Status == gpubroker.PIRequiresPaymentMethod {
			pi = nil // still held: cancel, under a new key
		}
	}
	if pi == nil {
		pi, err = d.Payments.Cancel(ctx, piID, "abandoned", gpubroker.RetryKey("release-"+o.ID, job.ID, job.Attempt))
		if err != nil && !(errors.Is(err, gpubroker.ErrPaymentState) && pi != nil) {
			return fmt.Errorf("error releasing the hold: %w", err)
		}
	}
	switch pi.Status {
	case gpubroker.PICanceled:
		return releaseOrder(ctx, d, o.ID, "You did not deploy before the hold on your card was due to lapse.")
	case gpubroker.PISucceeded:
		// Captured at Stripe though we never recorded it: the customer paid for a pod that will
		// not run, so record the capture and refund it, and say so on the pod.
		d.Logger.ErrorContext(ctx, "hold release found the payment captured; refunding", "order_id", o.ID)
		return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			pod, err := postgres.GetOrderPod(ctx, tx, o.ID)
			if err != nil {
				return err
			}
			ok, err := lifecycle.MoveOrder(ctx, tx, o, pod.ID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, d.now(), map[string]any{"amount_cents": o.AmountCents, "found_by": "release_hold"})
			if err != nil || !ok {
				return err
			}
			if _, err := lifecycle.MovePod(ctx, tx, pod, gpubroker.PodFailed, gpubroker.PodFailed,
				gpubroker.PodUpdate{Error: gpubroker.Ptr("Your pod was not deployed, but your payment had been captured. " + refundPending)}, nil); err != nil {
				return err
			}
			_, err = client(ctx).InsertTx(ctx, tx, RefundArgs{PodID: pod.ID, Reason: "Your pod was not deployed, but your payment had been captured."}, nil)
			return err
		})
	}
	return fmt.Errorf("payment intent %s is %s after releasing the hold", pi.ID, pi.Status)
}
