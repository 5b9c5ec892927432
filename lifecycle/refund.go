package lifecycle

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// PlanUnusedHoursRefund stores the refund's shares in the ledger unless they are there
// already, and returns the minutes used and bought (one rule for an early stop and a death:
// gpubroker.RentalClock.UnusedHoursRefund up to a.StoppedAt). The terminate request
// calls it in the transaction that moves the pod to terminating (so the amount is fixed, and the
// pod's end email can say it); the job calls it again, which plans nothing twice.
func PlanUnusedHoursRefund(ctx context.Context, tx pgx.Tx, log *slog.Logger, clock gpubroker.RentalClock, a tasks.UnusedHoursRefundArgs) (used, bought int, err error) {
	pod, err := postgres.LockPod(ctx, tx, a.PodID)
	if err != nil {
		return 0, 0, err
	}
	if pod.StartedAt == nil || pod.OrderStatus != gpubroker.OrderCaptured {
		return 0, 0, nil // never ran, free, or refunded in full already
	}
	o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
	if err != nil {
		return 0, 0, err
	}
	if o.PaymentIntentID != nil && o.CapturedAt != nil {
		// An order captured before the ledger's migration ran is recorded now.
		if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentOrder, *o.PaymentIntentID, o.AmountCents, o.Hours, o.Currency, *o.CapturedAt); err != nil {
			return 0, 0, err
		}
	}
	payments, err := postgres.OrderPayments(ctx, tx, o.ID)
	if err != nil {
		return 0, 0, err
	}
	bp := make([]gpubroker.BoughtPayment, 0, len(payments))
	for _, p := range payments {
		bp = append(bp, gpubroker.BoughtPayment{Payment: p.Payment, Hours: p.Hours})
	}
	// The same function the pod JSON's refund_if_stopped_cents comes from.
	u := clock.UnusedHoursRefund(*pod.StartedAt, a.StoppedAt, pod.HourlyCents, bp)
	if planned, err := postgres.HasRefunds(ctx, tx, pod.ID, a.Reason); err != nil || planned || u.Cents == 0 {
		return u.MinutesUsed, u.MinutesBought, err
	}
	if u.NotPlacedCents > 0 {
		log.ErrorContext(ctx, "unused minutes are worth more than the payments may still refund", "pod_id", pod.ID, "amount_cents", u.Cents+u.NotPlacedCents, "not_placed_cents", u.NotPlacedCents)
	}
	return u.MinutesUsed, u.MinutesBought, postgres.PlanRefunds(ctx, tx, pod.ID, a.Reason, u.Shares)
}
