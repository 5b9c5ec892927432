package gpubroker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The worked example (README): 3 hours at $1.79, stopped 10 minutes in: 170 minutes, $5.07,
// taken from the newest payment first; in the last minute, nothing.
func TestUnusedHoursRefund(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	order := BoughtPayment{Payment: Payment{ID: "order", AmountCents: 4900 + 2*179, CapturedAt: start}, Hours: 2}
	ext := BoughtPayment{Payment: Payment{ID: "ext", AmountCents: 179, CapturedAt: start.Add(time.Minute)}, Hours: 1}
	u := RentalClock{}.UnusedHoursRefund(start, start.Add(10*time.Minute-30*time.Second), 179, []BoughtPayment{order, ext})
	require.Equal(t, 10, u.MinutesUsed)
	require.Equal(t, 180, u.MinutesBought)
	require.Equal(t, 170, u.Minutes())
	require.EqualValues(t, 507, u.Cents)
	require.Equal(t, []RefundShare{{PaymentID: "ext", AmountCents: 179}, {PaymentID: "order", AmountCents: 328}}, u.Shares)
	require.Zero(t, u.NotPlacedCents)

	u = RentalClock{}.UnusedHoursRefund(start, start.Add(3*time.Hour-time.Second), 179, []BoughtPayment{order, ext})
	require.Zero(t, u.Cents)
	require.Zero(t, u.Minutes())
	require.Empty(t, u.Shares)

	// A ledger that can refund less than the rule gives: what it can, the rest not placed.
	short := BoughtPayment{Payment: Payment{ID: "order", AmountCents: 100, CapturedAt: start}, Hours: 3}
	u = RentalClock{Hour: 30 * time.Second}.UnusedHoursRefund(start, start.Add(5*time.Second), 179, []BoughtPayment{short})
	require.Equal(t, 10, u.MinutesUsed, "a compressed hour's minute is half a second")
	require.EqualValues(t, 100, u.Cents)
	require.EqualValues(t, 170*179/60-100, u.NotPlacedCents)
}
