package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A short chaos run (make test): eight customers through the production binaries while
// workers are killed, PostgreSQL crashes once and faults are injected; no violation.
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
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Gpubroker: bin, Customers: 8, Concurrency: 8, KillEvery: 3 * time.Second, Quiet: 4 * time.Minute, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Line())
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

// The money the checks expect of an order, from what its customer did: the rental rule worked
// independently of the product's own ledger.
func TestExpectedKept(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := started.Add(d); return &t }
	pro := &orderRow{amount: 4900 + 2*179, hours: 2, hourly: 179, startedAt: &started}
	ended := func(d time.Duration) *orderRow { o := *pro; o.endedAt = at(d); return &o }
	// 3 hours at $1.79 on Pro ($54.37), the worked example of the README and the refund policy.
	example := &orderRow{amount: 4900 + 3*179, hours: 3, hourly: 179, startedAt: &started, endedAt: at(10 * time.Minute)}
	for _, tc := range []struct {
		name   string
		out    outcome
		o      *orderRow
		lo, hi int64
	}{
		{"never deployed", outcome{scenario: scIdle}, &orderRow{amount: 5258, hours: 2, hourly: 179}, 0, 0},
		{"deployed, never ran", outcome{scenario: scRun, deployed: true}, &orderRow{amount: 5258, hours: 2, hourly: 179}, 0, 0},
		{"free", outcome{scenario: scFree, deployed: true}, &orderRow{hours: 1, startedAt: &started}, 0, 0},
		{"runs", outcome{scenario: scRun, deployed: true}, pro, 4900 + 2*179, 4900 + 2*179},
		{"extended, runs", outcome{scenario: scExtend, deployed: true, extended: 1}, pro, 4900 + 3*179, 4900 + 3*179},
		// 170 unused minutes × 179 / 60 = 507.16… → $5.07 back of $54.37.
		{"the worked example", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(10 * time.Minute)}, example, 5437 - 507, 5437 - 507},
		// 110 unused: 328.16… back.
		{"stopped 10 minutes in", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(10 * time.Minute)}, pro, 5258 - 328, 5258 - 328},
		// The server got the click within the window: 10 or 11 minutes used (109: 325.18… back).
		{"stopped 10 minutes in, ended 20 s later", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(10 * time.Minute)}, ended(10*time.Minute + 20*time.Second), 5258 - 328, 5258 - 325},
		// 50 unused: 149.16… back.
		{"stopped 70 minutes in", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(70 * time.Minute)}, pro, 5258 - 149, 5258 - 149},
		// One rule: 20 s in, stopped or dead, 1 minute used, 119 unused: 355.01… back.
		{"stopped 20 s in", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(20 * time.Second)}, ended(40 * time.Second), 5258 - 355, 5258 - 355},
		{"died 20 s in", outcome{scenario: scDie, deployed: true, killedAt: started.Add(20 * time.Second)}, ended(40 * time.Second), 5258 - 355, 5258 - 355},
		{"stopped before its start (clock skew)", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(-time.Second)}, pro, 5258 - 355, 5258 - 355},
		// 180 bought, 1 used: 534.01… back of 4900 + 3 × 179.
		{"extended, stopped at once", outcome{scenario: scExtendStop, deployed: true, extended: 1, stoppedAt: started.Add(time.Minute)}, pro, 5437 - 534, 5437 - 534},
		// 90 unused: 268.5 back; 30 unused: 89.5 back.
		{"died in its first hour", outcome{scenario: scDie, deployed: true, killedAt: started.Add(30 * time.Minute)}, pro, 5258 - 268, 5258 - 268},
		{"died in its second hour", outcome{scenario: scDie, deployed: true, killedAt: started.Add(90 * time.Minute)}, pro, 5258 - 89, 5258 - 89},
		{"stopped in its last minute", outcome{scenario: scStop, deployed: true, stoppedAt: started.Add(119*time.Minute + time.Second)}, pro, 5258, 5258},
		{"refunded by hand", outcome{scenario: scManual, deployed: true, manualCent: manualRefund}, pro, 4900 + 2*179 - manualRefund, 4900 + 2*179 - manualRefund},
	} {
		lo, hi, why := expectedKept(&tc.out, tc.o)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: expected %d¢ to %d¢ kept, the check says %d¢ to %d¢ (%s)", tc.name, tc.lo, tc.hi, lo, hi, why)
		}
	}
}
