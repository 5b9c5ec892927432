package lifecycle

import (
	"context"
	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// PlanUnusedHoursRefund stores the refund's shares in the ledger unless they are there
// already, and returns the minutes used and bought (one rule for an early stop and a death:
// gpubroker.MinutesUsed up to a.StoppedAt, gpubroker.UnusedMinutesCents). The terminate request
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
	ps := make([]gpubroker.Payment, 0, len(payments))
	for _, p := range payments {
		bought += gpubroker.MinutesBought(p.Hours)
		ps = append(ps, p.Payment)
	}
	used = clock.MinutesUsed(*pod.StartedAt, a.StoppedAt)
	if planned, err := postgres.HasRefunds(ctx, tx, pod.ID, a.Reason); err != nil || planned {
		return used, bought, err
	}
	amount := gpubroker.UnusedMinutesCents(bought, used, pod.HourlyCents)
	if amount == 0 {
		return used, bought, nil
	}
	shares, left := gpubroker.SpreadRefund(ps, amount)
	if left > 0 {
		log.ErrorContext(ctx, "unused minutes are worth more than the payments may still refund", "pod_id", pod.ID, "amount_cents", amount, "not_placed_cents", left)
	}
	return used, bought, postgres.PlanRefunds(ctx, tx, pod.ID, a.Reason, shares)
}
