package gpubroker

import (
	"testing"
	"time"
)

func TestMinutesUsed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {-time.Minute, 1}, {time.Nanosecond, 1}, {20 * time.Second, 1}, {time.Minute, 1},
		{time.Minute + time.Millisecond, 2}, {10 * time.Minute, 10}, {10*time.Minute + time.Second, 11},
		{119*time.Minute + 59*time.Second, 120}, {3 * time.Hour, 180},
	} {
		if got := MinutesUsed(t0, t0.Add(c.d)); got != c.want {
			t.Errorf("MinutesUsed(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

// The worked example of the README and the refund policy: 3 hours of an A100 at $1.79 on Pro
// ($49 + 3 × $1.79 = $54.37), stopped 10 minutes in: 170 unused minutes × 179 / 60 = 507.16…,
// rounded down: $5.07 back, $49.30 kept.
func TestEarlyStopWorkedExample(t *testing.T) {
	t0 := time.Now()
	const paid = 4900 + 3*179
	if paid != 5437 {
		t.Fatalf("paid %d, want 5437", paid)
	}
	bought := MinutesBought(3)
	used := MinutesUsed(t0, t0.Add(10*time.Minute))
	if bought != 180 || used != 10 {
		t.Fatalf("bought %d, used %d minutes; want 180, 10", bought, used)
	}
	got := UnusedMinutesCents(bought, used, 179)
	if got != 507 {
		t.Fatalf("refund = %d, want 507", got)
	}
	if kept := paid - got; kept != 4930 {
		t.Fatalf("kept %d, want 4930", kept)
	}
	if fee := PlanFeeCents(paid, 3, 179); fee != 4900 {
		t.Fatalf("fee %d, want 4900", fee)
	}
	for _, c := range []struct {
		bought, used int
		hourly, want int64
	}{
		{180, 180, 179, 0}, // every minute used
		{180, 200, 179, 0}, // overran
		{180, 179, 179, 2}, // one minute: 2.98… → 2
		{120, 1, 299, 593}, // 2 hours at $2.99, 20 s in: 119 × 299 / 60 = 593.01…
		{120, 1, 179, 355}, // 2 hours at $1.79, 20 s in: 119 × 179 / 60 = 355.01…
		{60, 59, 59, 0},    // one minute at $0.59/h is under a cent
		{60, 1, 0, 0},      // free
	} {
		if got := UnusedMinutesCents(c.bought, c.used, c.hourly); got != c.want {
			t.Errorf("UnusedMinutesCents(%d, %d, %d) = %d, want %d", c.bought, c.used, c.hourly, got, c.want)
		}
	}
	if fee := PlanFeeCents(3*179, 3, 179); fee != 0 {
		t.Fatalf("no fee: %d", fee)
	}
}

func TestSpreadRefundNewestFirstNeverAboveCaptured(t *testing.T) {
	t0 := time.Now()
	ps := []Payment{
		{ID: "order", AmountCents: 1250, CapturedAt: t0},
		{ID: "ext1", AmountCents: 250, CapturedAt: t0.Add(time.Hour)},
		{ID: "ext2", AmountCents: 500, RefundedCents: 400, CapturedAt: t0.Add(2 * time.Hour)},
	}
	shares, left := SpreadRefund(ps, 700)
	want := []RefundShare{{"ext2", 100}, {"ext1", 250}, {"order", 350}}
	if left != 0 || len(shares) != len(want) {
		t.Fatalf("shares %v left %d", shares, left)
	}
	for i := range want {
		if shares[i] != want[i] {
			t.Fatalf("share %d = %v, want %v", i, shares[i], want[i])
		}
	}
	_, left = SpreadRefund(ps, 5000)
	if left != 5000-(100+250+1250) {
		t.Fatalf("left %d", left)
	}
}

// Issue 11.3: a running pod whose instance died may fail (and nothing else may move it on).
func TestRunningPodMayFail(t *testing.T) {
	if !PodRunning.CanMoveTo(PodFailed) {
		t.Fatal("running -> failed is not allowed")
	}
	if PodFailed.CanMoveTo(PodRunning) {
		t.Fatal("a failed pod was revived")
	}
}

// A compressed clock (RENTAL_HOUR=20s in the chaos run) keeps the rule: a minute is a sixtieth
// of its hour, so 10 of its "minutes" are 3⅓ seconds.
func TestRentalClockCompressed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	c := RentalClock{Hour: 20 * time.Second, ReleaseMargin: time.Minute}
	if got := c.Hours(3); got != time.Minute {
		t.Errorf("3 hours last %v, want 1m", got)
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {333 * time.Millisecond, 1}, {334 * time.Millisecond, 2}, {10 * time.Second / 3, 10}, {time.Minute, 180}} {
		if got := c.MinutesUsed(t0, t0.Add(tc.d)); got != tc.want {
			t.Errorf("MinutesUsed(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if got := c.HoldReleaseAt(t0); !got.Equal(t0.Add(-time.Minute)) {
		t.Errorf("release at %v, want a minute before the deadline", got)
	}
	// The zero value is production's.
	var p RentalClock
	if p.Hours(2) != 2*time.Hour || p.MinutesUsed(t0, t0.Add(10*time.Minute+time.Second)) != 11 || !p.HoldReleaseAt(t0).Equal(t0.Add(-HoldReleaseMargin)) {
		t.Error("the zero clock is not an hour of an hour")
	}
}
