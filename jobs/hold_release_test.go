package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// Mutant m6 (hold released at capture_before itself, not the margin before). A Visa
// merchant-initiated hold lasts 4 days 18 hours: the checkout's webhook job authorizes the order
// with Stripe's capture_before as its deadline and schedules the release of the undeployed hold
// HoldReleaseMargin before it. Scheduled at the deadline itself, the release would come after
// the card network had already let the hold lapse, and a Deploy in between would capture nothing.
func TestHoldReleaseIsScheduledAMarginBeforeCaptureBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.stripe.SetHoldLifetime(4*24*time.Hour + 18*time.Hour)
	orderID, _ := b.order(t, "pro", "short-hold@example.com")
	cs := b.paidOrderSession(t, orderID)
	b.sessionCompleted(t, cs.ID)

	var status gpubroker.OrderStatus
	var expires, release time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, hold_expires_at FROM orders WHERE id = $1`, orderID).Scan(&status, &expires))
	require.Equal(t, gpubroker.OrderAuthorized, status)
	pi, err := b.deps.Payments.GetPaymentIntent(ctx, cs.PaymentIntentID)
	require.NoError(t, err)
	require.WithinDuration(t, pi.CaptureBefore, expires, time.Second, "the deadline is Stripe's capture_before")
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'release_hold' AND args->>'order_id' = $1`, orderID).Scan(&release))
	require.WithinDuration(t, expires.Add(-gpubroker.HoldReleaseMargin), release, time.Second, "released a margin before the deadline")
}
