// Command loadgen measures webhook ingest against the raw PostgreSQL floor (make load).
//
// It starts its own durable PostgreSQL cluster (fsync and synchronous_commit on) in a
// temporary directory, migrates it with `gpubroker migrate`, runs the real `gpubroker api`
// binary, and then, alternating in each round at 1, 8 and 32 concurrent senders:
//
//	raw  pgbench running the floor transaction: an event row (2.5 KB) and a river_job row
//	     committed together
//	api  uniquely identified, correctly signed 2.5 KB checkout.session.completed events
//	     POSTed to /api/stripe/webhook over keep-alive connections, 10% of them redeliveries
//
// Before every measurement the event and job tables are truncated and a checkpoint taken, so
// each starts from the same state. It prints one row per measurement (events/s, latency
// percentiles, the ratio to raw at the same concurrency, the API's and PostgreSQL's CPU per
// event from /proc) and the medians over the rounds. With -profile it then takes a CPU
// profile of the api at 8 senders through PPROF_ADDR and prints its top entries.
//
// Everything it talks to is on 127.0.0.1; every measurement is bounded in time and count.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker/api"
	"gpubroker/cmd/internal/gbproc"
	"gpubroker/cmd/internal/pgcluster"
)

type options struct {
	gpubroker string
	rounds    int
	duration  time.Duration
	senders   []int
	dupShare  float64
	maxEvents int
	profile   string
	keep      bool
	dbParams  string
	burst     int
}

func main() {
	var o options
	var senders string
	flag.StringVar(&o.gpubroker, "gpubroker", "bin/gpubroker", "the gpubroker binary to run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of alternating raw and api measurements")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one measurement (whole seconds)")
	flag.StringVar(&senders, "senders", "1,8,32", "concurrent senders (and pgbench clients), comma-separated")
	flag.Float64Var(&o.dupShare, "dup", 0.10, "share of redelivered events")
	flag.IntVar(&o.maxEvents, "max-events", 500_000, "at most this many events per measurement")
	flag.StringVar(&o.profile, "profile", "", "after the rounds, write a CPU profile of the api at 8 senders here and print its top")
	flag.StringVar(&o.dbParams, "api-db-params", "", "extra DATABASE_URL parameters for the api only, e.g. pool_max_conns=16 (experiments)")
	flag.IntVar(&o.burst, "jobs", 2000, "then run BenchmarkStripeEventBurst with this many paid checkouts on the same cluster (0: skip; needs the source tree)")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster directory (logs) instead of removing it")
	flag.Parse()
	for _, s := range strings.Split(senders, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 256 {
			fmt.Fprintf(os.Stderr, "loadgen: -senders: %q is not a number from 1 to 256\n", s)
			os.Exit(2)
		}
		o.senders = append(o.senders, n)
	}
	if o.rounds < 1 || o.rounds > 20 || o.duration < time.Second || o.duration > 5*time.Minute {
		fmt.Fprintln(os.Stderr, "loadgen: -rounds must be 1..20 and -duration 1s..5m")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runLoad(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func runLoad(ctx context.Context, o options, out io.Writer) (err error) {
	bin, err := filepath.Abs(o.gpubroker)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found (make build)", bin)
	}
	maxSenders := slices.Max(o.senders)
	c, err := pgcluster.Start(pgcluster.Options{Prefix: "gpubroker-load-", MaxConns: maxSenders + 50})
	defer func() { c.Stop(o.keep || err != nil) }()
	if err != nil {
		return fmt.Errorf("error starting PostgreSQL: %w", err)
	}
	dbURL := c.URL("gpubroker")
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var fsync, syncCommit, version string
	if err := conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('server_version')`).Scan(&fsync, &syncCommit, &version); err != nil {
		return err
	}
	if fsync != "on" || syncCommit != "on" {
		return fmt.Errorf("cluster is not durable: fsync=%s synchronous_commit=%s", fsync, syncCommit)
	}

	if err := gbproc.Migrate(ctx, bin, dbURL); err != nil {
		return err
	}

	apiURL := dbURL
	if o.dbParams != "" {
		apiURL += "&" + o.dbParams
	}
	api, err := startAPI(ctx, bin, c, apiURL)
	if err != nil {
		return err
	}
	defer api.Stop()

	tmpl, err := newTemplate()
	if err != nil {
		return err
	}
	runID := make([]byte, 3)
	_, _ = rand.Read(runID)
	l := &load{url: api.URL() + "/api/stripe/webhook", secret: []byte(api.secret), header: api.Header, tmpl: tmpl, run: "load" + hex.EncodeToString(runID),
		dupShare: o.dupShare, maxEvents: o.maxEvents}

	fmt.Fprintf(out, "PostgreSQL %s, fsync=%s, synchronous_commit=%s; %d CPUs; %d rounds of %s per measurement; %d%% redeliveries; %d-byte events\n",
		version, fsync, syncCommit, numCPU(), o.rounds, o.duration, int(o.dupShare*100), len(tmpl.body))
	fmt.Fprintln(out, "Other processes on this machine share its CPUs: compare api with raw in the same round.")
	fmt.Fprintln(out)
	// Rows are printed as they are measured, so the columns are fixed-width.
	const rowFmt = "%5v %4v %7v %9v %7v %7v %7v %6v %9v %8v %6v\n"
	fmt.Fprintf(out, rowFmt, "round", "what", "senders", "events/s", "p50 ms", "p95 ms", "p99 ms", "ratio", "api µs/ev", "pg µs/ev", "errors")
	var rows []*result
	raw := map[int]*result{}
	pm := c.PostmasterPID()
	for round := 1; round <= o.rounds; round++ {
		for _, n := range o.senders {
			for _, what := range []string{"raw", "api"} {
				if err := reset(ctx, conn); err != nil {
					return err
				}
				pg0, api0 := treeCPU(pm), processCPU(api.Pid())
				var r *result
				if what == "raw" {
					if r, err = pgbench(ctx, c, c.Dir, tmpl.body, n, o.duration); err != nil {
						return err
					}
					raw[n] = r
					// Let the postmaster reap pgbench's backends, so their CPU is in its cutime.
					time.Sleep(300 * time.Millisecond)
				} else {
					r = l.measure(ctx, n, o.duration)
					r.apiCPU = processCPU(api.Pid()) - api0
				}
				r.pgCPU = treeCPU(pm) - pg0
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rows = append(rows, r)
				ratio := r.rate() / raw[n].rate()
				apiCol := "-"
				if what == "api" {
					apiCol = fmt.Sprintf("%.0f", perEvent(r.apiCPU, r.events))
				}
				fmt.Fprintf(out, rowFmt, round, what, n, fmt.Sprintf("%.0f", r.rate()), fmt.Sprintf("%.2f", ms(r.pct(0.50))),
					fmt.Sprintf("%.2f", ms(r.pct(0.95))), fmt.Sprintf("%.2f", ms(r.pct(0.99))), fmt.Sprintf("%.2f", ratio), apiCol,
					fmt.Sprintf("%.0f", perEvent(r.pgCPU, r.events)), r.errors)
				r.ratio = ratio
			}
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Medians over %d rounds:\n", o.rounds)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tsenders\tevents/s\tp99 ms\tratio\tapi µs/ev\tpg µs/ev\t")
	for _, n := range o.senders {
		for _, what := range []string{"raw", "api"} {
			var sel []*result
			for _, r := range rows {
				if r.what == what && r.senders == n {
					sel = append(sel, r)
				}
			}
			apiCol := "-"
			if what == "api" {
				apiCol = fmt.Sprintf("%.0f", median(sel, func(r *result) float64 { return perEvent(r.apiCPU, r.events) }))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%s\t%.0f\t\n", what, n,
				median(sel, (*result).rate), median(sel, func(r *result) float64 { return ms(r.pct(0.99)) }),
				median(sel, func(r *result) float64 { return r.ratio }), apiCol,
				median(sel, func(r *result) float64 { return perEvent(r.pgCPU, r.events) }))
		}
	}
	_ = tw.Flush()
	for _, n := range o.senders {
		if n != 8 {
			continue
		}
		var sel []*result
		for _, r := range rows {
			if r.what == "api" && r.senders == 8 {
				sel = append(sel, r)
			}
		}
		fmt.Fprintf(out, "\nAt 8 senders: api/raw = %.2f (median of %d rounds), api p99 %.2f ms\n", median(sel, func(r *result) float64 { return r.ratio }),
			len(sel), median(sel, func(r *result) float64 { return ms(r.pct(0.99)) }))
	}

	if o.profile != "" {
		if err := profile(ctx, l, conn, api, bin, o, out); err != nil {
			return err
		}
	}
	if o.burst > 0 {
		api.Stop() // its CPUs are the job side's now
		if err := jobBurst(ctx, c, o.burst, out); err != nil {
			return err
		}
	}
	return nil
}

// jobBurst runs the job-side benchmark (cmd/gpubroker BenchmarkStripeEventBurst) against this
// cluster: its test harness makes a fresh database on it for the run.
func jobBurst(ctx context.Context, c *pgcluster.Cluster, n int, out io.Writer) error {
	fmt.Fprintf(out, "\nJob side: a burst of %d paid checkouts' events through stripe_event (production River settings, Stripe stand-in) against River's no-op rate, same cluster:\n", n)
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^$", "-bench", "^BenchmarkStripeEventBurst$", "-benchtime", "1x", "-timeout", "20m", "./cmd/gpubroker/")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+c.URL("postgres"), "GPUBROKER_BURST="+strconv.Itoa(n))
	b, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Benchmark") || err != nil {
			fmt.Fprintln(out, line)
		}
	}
	if err != nil {
		return fmt.Errorf("job benchmark: %w", err)
	}
	return nil
}

// profile takes a CPU profile of the api while 8 senders load it, and prints its top entries.
func profile(ctx context.Context, l *load, conn *pgx.Conn, api *apiProc, bin string, o options, out io.Writer) error {
	if err := reset(ctx, conn); err != nil {
		return err
	}
	secs := max(1, int(o.duration/time.Second))
	done := make(chan error, 1)
	path, err := filepath.Abs(o.profile)
	if err != nil {
		return err
	}
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", api.pprofAddr, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	r := l.measure(ctx, 8, o.duration)
	if err := <-done; err != nil {
		return fmt.Errorf("error taking the profile: %w", err)
	}
	fmt.Fprintf(out, "\nCPU profile of the api at 8 senders (%.0f events/s while profiled), saved to %s:\n", r.rate(), path)
	top := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", bin, path)
	top.Stdout, top.Stderr = out, out
	_ = top.Run()
	top = exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=30", bin, path)
	fmt.Fprintln(out, "\nBy cumulative time:")
	top.Stdout, top.Stderr = out, out
	return top.Run()
}

// reset empties the tables both sides write and checkpoints, so every measurement starts
// from the same state (and pays for the same full-page writes after the checkpoint).
func reset(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `TRUNCATE stripe_events, river_job`); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, `CHECKPOINT`)
	return err
}

// apiProc is `gpubroker api` with what the load needs of it: its webhook secret and the
// address its profiler listens on.
type apiProc struct {
	*gbproc.Proc
	pprofAddr, secret string
}

// startAPI runs `gpubroker api` in production mode on loopback ports, its log in the cluster
// directory. Its Stripe key is a test key nothing calls: the webhook never talks to Stripe.
func startAPI(ctx context.Context, bin string, c *pgcluster.Cluster, dbURL string) (*apiProc, error) {
	port, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	pport, err := pgcluster.FreePort()
	if err != nil {
		return nil, err
	}
	secret, origin := make([]byte, 16), make([]byte, 24)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(origin)
	a := &apiProc{pprofAddr: fmt.Sprintf("127.0.0.1:%d", pport), secret: "whsec_" + hex.EncodeToString(secret)}
	// The events come straight to the api, with the header CloudFront would add.
	a.Proc = &gbproc.Proc{Name: "api", Mode: "api", Bin: bin, LogPath: filepath.Join(c.Dir, "api.log"), Port: port, Ready: "/readyz",
		Header: http.Header{api.OriginSecretHeader: {hex.EncodeToString(origin)}},
		Env: []string{
			"ORIGIN_SECRET=" + hex.EncodeToString(origin),
			"PUBLIC_URL=" + fmt.Sprintf("http://127.0.0.1:%d", port), "DATABASE_URL=" + dbURL,
			"STRIPE_SECRET_KEY=sk_test_loadgen", "STRIPE_WEBHOOK_SECRET=" + a.secret, "STRIPE_API_BASE=http://127.0.0.1:9",
			"LOG_LEVEL=info", "PPROF_ADDR=" + a.pprofAddr,
		}}
	if err := a.Start(ctx); err != nil {
		a.Stop()
		b, _ := os.ReadFile(a.LogPath)
		return nil, fmt.Errorf("gpubroker api did not become ready: %w\n%s", err, b)
	}
	return a, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(rs []*result, f func(*result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count("\n"+string(b), "\nprocessor")
}
