package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/tasks"
)

// Deploy is the owner pressing Deploy on a locked pod: it moves configured → deploying and
// enqueues the capture, which provisions only once the payment is captured. A repeated click
// while it is under way changes nothing.
func Deploy(ctx context.Context, tx pgx.Tx, ins Inserter, acct *gpubroker.Account, pod *gpubroker.Pod, at time.Time) error {
	if err := DeployRefusal(acct, pod, at); err != nil {
		if gpubroker.ErrorReason(err) == "already_deployed" && (pod.Status == gpubroker.PodDeploying || pod.Status == gpubroker.PodProvisioning) {
			return nil // a repeated click: already under way
		}
		return err
	}
	if _, err := MovePod(ctx, tx, pod, gpubroker.PodConfigured, gpubroker.PodDeploying, gpubroker.PodUpdate{DeployRequestedAt: gpubroker.Ptr(at), Error: gpubroker.Ptr("")}, nil); err != nil {
		return err
	}
	_, err := ins.InsertTx(ctx, tx, tasks.CaptureArgs{PodID: pod.ID}, nil)
	return err
}

// DeployRefusal is why the owner may not press Deploy on the pod, as the domain error Deploy
// returns (the pod JSON's deploy_blocked shows the same), or nil when they may. A pod already
// on its way is refused here as already deployed; Deploy itself takes a repeated click as done.
// The order of the checks is the answer's: an unconfirmed account first, then a released hold.
func DeployRefusal(acct *gpubroker.Account, pod *gpubroker.Pod, now time.Time) error {
	switch {
	case acct == nil || acct.Status != gpubroker.AccountActive:
		return gpubroker.Errorf(gpubroker.EFORBIDDEN, "account_inactive", "Confirm your email address before deploying: we sent you a link.")
	case pod.OrderStatus == gpubroker.OrderReleased || pod.OrderStatus == gpubroker.OrderExpired:
		return gpubroker.Errorf(gpubroker.ECONFLICT, "hold_released", "The hold on your card was released, so this pod can no longer be deployed. Start a new order.")
	case pod.Status == gpubroker.PodFailed && pod.OrderStatus == gpubroker.OrderAuthorized:
		// The release job claimed the pod and is cancelling the hold.
		return gpubroker.Errorf(gpubroker.ECONFLICT, "hold_released", "The hold on your card is being released, so this pod can no longer be deployed.")
	case pod.Status != gpubroker.PodConfigured:
		return gpubroker.Errorf(gpubroker.ECONFLICT, "already_deployed", "This pod has already been deployed.")
	case pod.OrderStatus == gpubroker.OrderCheckoutPending:
		return gpubroker.Errorf(gpubroker.ECONFLICT, "not_payable", "Waiting for your payment to be confirmed.")
	case pod.OrderStatus == gpubroker.OrderRefunded:
		return gpubroker.Errorf(gpubroker.ECONFLICT, "not_payable", "This order was refunded.")
	case pod.OrderStatus != gpubroker.OrderAuthorized && pod.OrderStatus != gpubroker.OrderFree:
		return gpubroker.Errorf(gpubroker.ECONFLICT, "not_payable", "This order is %s and cannot be deployed.", pod.OrderStatus)
	case pod.OrderStatus == gpubroker.OrderAuthorized && pod.HoldExpiresAt != nil && !now.Before(*pod.HoldExpiresAt):
		// Stripe no longer captures it: say so now rather than after a failed capture.
		return gpubroker.Errorf(gpubroker.ECONFLICT, "hold_expired", "The hold on your card has expired. Start a new order.")
	}
	return nil
}

// Terminate is the owner pressing Stop on a locked pod: it moves running → terminating,
// enqueues the end of its instance and, for a paid pod, plans the refund of every unused minute
// (counted to this moment, so the amount is fixed with the stop) and enqueues it. It returns the
// pod's status; a pod already ending changes nothing.
func Terminate(ctx context.Context, tx pgx.Tx, ins Inserter, log *slog.Logger, clock gpubroker.RentalClock, pod *gpubroker.Pod, at time.Time) (gpubroker.PodStatus, error) {
	switch pod.Status {
	case gpubroker.PodTerminating, gpubroker.PodTerminated:
		return pod.Status, nil
	case gpubroker.PodRunning:
	default:
		return pod.Status, gpubroker.Errorf(gpubroker.ECONFLICT, "not_running", "Only a running pod can be terminated.")
	}
	if _, err := MovePod(ctx, tx, pod, gpubroker.PodRunning, gpubroker.PodTerminating, gpubroker.PodUpdate{}, nil); err != nil {
		return pod.Status, err
	}
	if _, err := ins.InsertTx(ctx, tx, tasks.TerminateArgs{PodID: pod.ID}, nil); err != nil {
		return pod.Status, err
	}
	if pod.OrderStatus != gpubroker.OrderCaptured {
		return gpubroker.PodTerminating, nil // free: nothing was paid
	}
	args := tasks.UnusedHoursRefundArgs{PodID: pod.ID, Reason: gpubroker.RefundEarlyStop, StoppedAt: at}
	if _, _, err := PlanUnusedHoursRefund(ctx, tx, log, clock, args); err != nil {
		return pod.Status, err
	}
	_, err := ins.InsertTx(ctx, tx, args, nil)
	return gpubroker.PodTerminating, err
}
