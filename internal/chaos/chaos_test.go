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
