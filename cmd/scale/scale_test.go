package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/cmd/scale/internal/scale"
)

// TestScaleTiny runs the whole tool at a tiny size (5,000 orders) against the production
// build, so make scale keeps working: seeding, the processes, every route answering below 500,
// the collector's queries, the periodic jobs and the table.
func TestScaleTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and the production processes")
	}
	bin := filepath.Join(t.TempDir(), "gpubroker")
	build := exec.Command("go", "build", "-tags", "nostandins", "-o", bin, "gpubroker/cmd/gpubroker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the production binary: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := scale.Run(ctx, scale.Options{Gpubroker: bin, Scale: 0.01, Requests: 3, JobWindow: 25 * time.Second, Keep: true, Out: &out})
	if res != nil && res.Dir != "" {
		t.Cleanup(func() { _ = os.RemoveAll(res.Dir) })
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(res.Routes) < 15 || len(res.Collect) < 20 {
		t.Errorf("%d routes and %d collector queries timed, want every one", len(res.Routes), len(res.Collect))
	}
	ran := map[string]bool{}
	for _, j := range res.Jobs {
		ran[j.Name] = j.N > 0
	}
	for _, kind := range []string{"pod_health", "retention"} {
		if !ran[kind] {
			t.Errorf("periodic job %s did not run", kind)
		}
	}
	for _, want := range []string{"GET /ops/orders/{id}", "CountAuditActions", "pod_health", "statements over 100 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no %q", want)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "catch-up after seeding") {
		t.Error("the table has no catch-up after seeding")
	}

	// -reuse: the kept cluster measured again, migrated up and not seeded again.
	var again strings.Builder
	res2, err := scale.Run(ctx, scale.Options{Gpubroker: bin, Reuse: res.Dir, Requests: 1, JobWindow: time.Second, Out: &again})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + again.String())
	if res2.Volumes != res.Volumes || !strings.Contains(again.String(), "reused "+res.Dir) {
		t.Errorf("the reused run measured %+v, seeded %+v", res2.Volumes, res.Volumes)
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("the reused cluster was not kept: %v", err)
	}
}
