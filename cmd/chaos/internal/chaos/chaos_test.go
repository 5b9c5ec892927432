package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A short chaos run (make test): fourteen customers through the production binaries while
// workers are killed, PostgreSQL crashes once, every money fault is aimed at a customer's call
// and the rental clock runs 120 times fast; no violation, every aimed fault struck.
// make chaos runs the full one (50 customers).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a chaos run takes a minute or two")
	}
	bin := filepath.Join(t.TempDir(), "gpubroker")
	build := exec.Command("go", "build", "-tags", "nostandins", "-o", bin, "gpubroker/cmd/gpubroker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the production binary: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	// One turn of the rotation meets every scenario and every aimed money fault (chainOf).
	res, err := Run(ctx, Options{Gpubroker: bin, Customers: len(rotation), Concurrency: len(rotation), KillEvery: 6 * time.Second, Quiet: 4 * time.Minute, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Line())
	t.Log("money faults struck/armed:", res.MoneyKinds)
	for _, v := range res.Violations {
		t.Error("violation:", v)
	}
	if t.Failed() {
		t.Log("the run's logs and cluster are kept in", res.Dir)
		if os.Getenv("CI") != "" {
			for _, name := range []string{"worker-1.log", "worker-2.log", "api.log"} {
				if b, err := os.ReadFile(filepath.Join(res.Dir, name)); err == nil && len(b) > 0 {
					t.Logf("--- %s (last 4 KiB)\n%s", name, b[max(0, len(b)-4096):])
				}
			}
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(p))
	return len(p), nil
}

// The money the checks expect of an order, from what its customer did and was shown: the
// rental rule worked independently of the product's own ledger.
func TestExpectedKept(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return started.Add(d) }
	pro := outcome{deployed: true, ran: true, hours: 2, hourly: 179, shown: 4900 + 2*179, sawRunning: started}
	with := func(sc string, f func(o *outcome)) outcome { o := pro; o.scenario = sc; f(&o); return o }
	stop := func(d, answered time.Duration) func(o *outcome) {
		return func(o *outcome) { o.stoppedAt, o.stopAnswered = at(d), at(answered) }
	}
	for _, tc := range []struct {
		name    string
		out     outcome
		startLo time.Time
		hour    time.Duration
		lo, hi  int64
	}{
		{"never deployed", outcome{scenario: scIdle, hours: 2, hourly: 179, shown: 5258}, time.Time{}, time.Hour, 0, 0},
		{"deployed, never ran", outcome{scenario: scRun, deployed: true, hours: 2, hourly: 179, shown: 5258}, time.Time{}, time.Hour, 0, 0},
		{"free", with(scFree, func(o *outcome) { o.shown, o.hourly = 0, 0 }), started, time.Hour, 0, 0},
		{"ran to its end", with(scRun, func(*outcome) {}), started, time.Hour, 5258, 5258},
		{"extended, ran to its end", with(scExtend, func(o *outcome) { o.extended = 1 }), started, time.Hour, 4900 + 3*179, 4900 + 3*179},
		{"extension paid late", with(scExtend, func(o *outcome) { o.lateHours = 1 }), started, time.Hour, 5258, 5258},
		// 3 hours at $1.79 on Pro ($54.37), stopped 10 minutes in: 170 unused × 179 / 60 = 507.16… → $5.07.
		{"the worked example", with(scStop, func(o *outcome) { o.hours, o.shown = 3, 5437; stop(10*time.Minute, 10*time.Minute)(o) }), started, time.Hour, 5437 - 507, 5437 - 507},
		// 110 unused: 328.16… back.
		{"stopped 10 minutes in", with(scStop, stop(10*time.Minute, 10*time.Minute)), started, time.Hour, 5258 - 328, 5258 - 328},
		// The server got the click within 20 s and the pod may have started up to 30 s before
		// its owner saw it: 10 to 11 minutes used (109 unused: 325.18… back).
		{"stopped 10 minutes in, a window", with(scStop, stop(10*time.Minute, 10*time.Minute+20*time.Second)), at(-30 * time.Second), time.Hour, 5258 - 328, 5258 - 325},
		// One rule: 20 s in, stopped or dead, 1 minute used, 119 unused: 355.01… back.
		{"stopped 20 s in", with(scStop, stop(20*time.Second, 20*time.Second)), started, time.Hour, 5258 - 355, 5258 - 355},
		{"died 20 s in", with(scDie, func(o *outcome) { o.killedAt, o.sawDead = at(20*time.Second), at(20*time.Second) }), started, time.Hour, 5258 - 355, 5258 - 355},
		{"stopped before it was seen running", with(scStop, stop(-time.Second, -time.Second)), started, time.Hour, 5258 - 355, 5258 - 355},
		// 180 bought, 1 used: 534.01… back of 4900 + 3 × 179.
		{"extended, stopped at once", with(scExtendStop, func(o *outcome) { o.extended = 1; stop(time.Minute, time.Minute)(o) }), started, time.Hour, 5437 - 534, 5437 - 534},
		// 90 unused: 268.5 back; 30 unused: 89.5 back.
		{"died in its first hour", with(scDie, func(o *outcome) { o.killedAt, o.sawDead = at(30*time.Minute), at(30*time.Minute) }), started, time.Hour, 5258 - 268, 5258 - 268},
		{"died in its second hour", with(scDie, func(o *outcome) { o.killedAt, o.sawDead = at(90*time.Minute), at(90*time.Minute) }), started, time.Hour, 5258 - 89, 5258 - 89},
		{"stopped in its last minute", with(scStop, stop(119*time.Minute+time.Second, 119*time.Minute+time.Second)), started, time.Hour, 5258, 5258},
		{"refunded by hand", with(scManual, func(o *outcome) { o.manualCent = manualRefund }), started, time.Hour, 5258 - manualRefund, 5258 - manualRefund},
		// The start the pod showed its owner, within its bounds, leaves only the stop's window:
		// 5.1 s to 5.15 s of 0.5 s minutes is 11 begun (109 unused: 325.18… back); without it the
		// boot 30 s earlier would allow 70 more minutes.
		{"the start it was told", with(scStop, func(o *outcome) { stop(5100*time.Millisecond, 5150*time.Millisecond)(o); o.toldStart = started }), at(-30 * time.Second), 30 * time.Second, 5258 - 325, 5258 - 325},
		{"a start told outside its bounds is not used", with(scStop, func(o *outcome) { stop(5100*time.Millisecond, 5150*time.Millisecond)(o); o.toldStart = at(time.Second) }), started, 30 * time.Second, 5258 - 325, 5258 - 325},
		// The run's clock: a 30 s hour has 0.5 s minutes; stopped 5 s in is 10 minutes used.
		{"a compressed hour", with(scStop, stop(5*time.Second, 5*time.Second)), started, 30 * time.Second, 5258 - 328, 5258 - 328},
	} {
		lo, hi, why := expectedKept(&tc.out, tc.startLo, tc.hour)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: expected %d¢ to %d¢ kept, the check says %d¢ to %d¢ (%s)", tc.name, tc.lo, tc.hi, lo, hi, why)
		}
	}
}
