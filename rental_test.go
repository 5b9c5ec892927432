package gpubroker

import (
	"testing"
	"time"
)

func TestHoursStarted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {-time.Minute, 1}, {time.Second, 1}, {10 * time.Minute, 1}, {time.Hour, 1},
		{time.Hour + time.Second, 2}, {119 * time.Minute, 2}, {3 * time.Hour, 3},
	} {
		if got := HoursStarted(t0, t0.Add(c.d)); got != c.want {
			t.Errorf("HoursStarted(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	if got := HoursCompleted(t0, t0.Add(119*time.Minute)); got != 1 {
		t.Errorf("HoursCompleted(119m) = %d, want 1", got)
	}
}

// The worked example of the README: 3 hours at $1.79, stopped 10 minutes in: $3.58 back.
func TestEarlyStopWorkedExample(t *testing.T) {
	t0 := time.Now()
	used := HoursStarted(t0, t0.Add(10*time.Minute))
	if got := UnusedCents(3, used, 179); got != 358 {
		t.Fatalf("refund = %d, want 358", got)
	}
	if got := UnusedCents(3, 3, 179); got != 0 {
		t.Fatalf("all hours started: refund = %d, want 0", got)
	}
	if got := UnusedCents(3, 5, 179); got != 0 {
		t.Fatalf("overran: refund = %d, want 0", got)
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
