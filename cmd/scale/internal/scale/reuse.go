package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/cmd/internal/pgcluster"
	"gpubroker/postgres"
)

// server is the cluster a run measures: a new one (pgcluster) or a kept one started again
// (-reuse).
type server interface {
	URL(db string) string
	Stop(keep bool)
}

// keptCluster is a cluster a run kept (-keep), started again from its directory with the
// same settings on a new port. Stop always keeps it.
type keptCluster struct {
	bin, dir, data string
	port           int
	asPostgres     bool
}

// seededFile, in a kept cluster's directory, says what was seeded into it.
const seededFile = "seeded.json"

type seeded struct {
	Scale    float64
	Volumes  Volumes
	SeedTook time.Duration
}

// startKept starts the kept cluster in dir with settings (name=value each).
func startKept(dir string, settings []string) (*keptCluster, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		return nil, errors.New("no PostgreSQL binaries under /usr/lib/postgresql")
	}
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	c := &keptCluster{bin: dirs[len(dirs)-1], dir: dir, data: filepath.Join(dir, "data"), asPostgres: os.Getuid() == 0}
	if _, err := os.Stat(filepath.Join(c.data, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("%s is no kept make scale cluster (no data/PG_VERSION): %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		return nil, fmt.Errorf("%s: a server is running on it (or crashed: remove data/postmaster.pid)", dir)
	}
	var err error
	if c.port, err = pgcluster.FreePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200", c.port, c.data)
	for _, kv := range settings {
		opts += " -c " + kv
	}
	if err := c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "600", "start", "-o", opts); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *keptCluster) run(name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return nil
}

func (c *keptCluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Stop stops the server and keeps its directory for the next -reuse.
func (c *keptCluster) Stop(bool) {
	if c == nil {
		return
	}
	if err := c.run("pg_ctl", "-D", c.data, "-m", "fast", "-w", "-t", "600", "stop"); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
	}
	fmt.Fprintf(os.Stderr, "scale: the cluster is kept in %s\n", c.dir)
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
var opsMetrics = []string{"audit", "orders", "pods", "provisioning"}

// CatchUp folds what seeding left for the ops collector: every funnel day the seed's statements
// marked dirty (postgres.FoldFunnel: CountFunnel's fold, FunnelFoldDays a call) and
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
	_, err := pool.Exec(ctx, `VACUUM (ANALYZE) funnel_dirty, funnel_days, ops_counts`)
	return folds, err
}
