package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/postgres"
)

// ReleaseHoldArgs cancels an unused hold, scheduled HoldReleaseAfter the authorization.
type ReleaseHoldArgs struct {
	OrderID string `json:"order_id"`
}

// Kind implements river.JobArgs.
func (ReleaseHoldArgs) Kind() string { return "release_hold" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReleaseHoldArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{UniqueOpts: unique()} }

// ReleaseHoldWorker cancels the PaymentIntent of an order that was never deployed, a day
// before the card network would drop the hold anyway, and tells the user.
type ReleaseHoldWorker struct {
	river.WorkerDefaults[ReleaseHoldArgs]
	d *Deps
}

// NextRetry implements the RetryDelay override.
func (w *ReleaseHoldWorker) NextRetry(*river.Job[ReleaseHoldArgs]) time.Time { return w.d.nextRetry() }

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
	var claimed bool
	err = postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.GetOrderPod(ctx, tx, o.ID)
		if err != nil {
			return err
		}
		if _, err := postgres.LockPod(ctx, tx, pod.ID); err != nil {
			return err
		}
		claimed, err = postgres.MovePod(ctx, tx, pod.ID, gpubroker.PodConfigured, gpubroker.PodFailed,
			map[string]any{"error": "The card hold was released after 6 days without a deploy; nothing was charged."})
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
	pi, err := d.Payments.Cancel(ctx, *o.PaymentIntentID, "abandoned", "release-"+o.ID)
	if errors.Is(err, gpubroker.ErrPaymentState) && pi != nil && pi.Status == gpubroker.PISucceeded {
		// Captured at Stripe though we never recorded it: the customer paid for a pod that will
		// not run, so record the capture and refund it.
		d.Logger.ErrorContext(ctx, "hold release found the payment captured; refunding", "order_id", o.ID)
		return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			ok, err := postgres.MoveOrder(ctx, tx, o.ID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, d.now())
			if err != nil || !ok {
				return err
			}
			pod, err := postgres.GetOrderPod(ctx, tx, o.ID)
			if err != nil {
				return err
			}
			_, err = client(ctx).InsertTx(ctx, tx, RefundArgs{PodID: pod.ID, Reason: "Your pod was not deployed."}, nil)
			return err
		})
	}
	if err != nil && !(errors.Is(err, gpubroker.ErrPaymentState) && pi != nil && pi.Status == gpubroker.PICanceled) {
		return err
	}
	return releaseOrder(ctx, d, o.ID, "You did not deploy within 6 days, so we released the hold on your card. Nothing was charged.")
}
