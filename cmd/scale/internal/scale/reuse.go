package scale

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/postgres"
)

// seededFile, in a kept cluster's directory, says what was seeded into it.
const seededFile = "seeded.json"

type seeded struct {
	Scale    float64
	Volumes  Volumes
	SeedTook time.Duration
}

func writeSeeded(dir string, s seeded) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, seededFile), b, 0o644)
}

// readSeeded reads what was seeded into a kept cluster; ok is false for a cluster kept before
// the file was written (the run's -scale is taken instead).
func readSeeded(dir string) (s seeded, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, seededFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	return s, true, json.Unmarshal(b, &s)
}

// opsMetrics are ops_counts' metrics (migrations 017 and 018), each folded by SumCounts.
var opsMetrics = []string{"audit", "orders", "pods", "provisioning", "provisioning_day"}

// CatchUp folds what seeding left for the ops collector: every funnel day the seed's statements
// marked dirty (postgres.FoldFunnel: CountFunnel's fold, FunnelFoldHours a call) and
// ops_counts' delta rows (postgres.SumCounts), calling the collector's own code until nothing
// is dirty, then vacuums the tables it emptied (as autovacuum would soon after). A collector
// running on a database that took a year to fill never sees the backlog a seed leaves in one
// go; make scale times what follows, the steady state. It returns how many funnel folds ran.
func CatchUp(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	folds := 0
	for {
		var dirty bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM funnel_dirty)`).Scan(&dirty); err != nil {
			return folds, err
		}
		if !dirty {
			break
		}
		if err := postgres.FoldFunnel(ctx, pool); err != nil {
			return folds, err
		}
		folds++
	}
	for _, m := range opsMetrics {
		if _, err := postgres.SumCounts(ctx, pool, m); err != nil {
			return folds, err
		}
	}
	_, err := pool.Exec(ctx, `VACUUM (ANALYZE) funnel_dirty, funnel_hours, ops_counts`)
	return folds, err
}
