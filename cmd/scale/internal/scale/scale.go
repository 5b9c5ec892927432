// Package scale is make scale: it seeds a throwaway cluster with a multiple of a year of a busy
// service (Base), runs the production processes on it (gpubroker api and worker, with the
// Stripe, RunPod and SES stand-ins in this process), times every customer and ops route, every
// query of the ops collector and every periodic job, and lists the slowest statements with
// their plans (PostgreSQL's own log: log_min_duration_statement and auto_explain, and
// pg_stat_statements).
package scale

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/api"
	"gpubroker/billing/stripesim"
	"gpubroker/cmd/internal/gbproc"
	"gpubroker/cmd/internal/pgcluster"
	"gpubroker/gpu/runpod/runpodsim"
	"gpubroker/mail/ses/sesfake"
	"gpubroker/postgres"
)

// SlowMS is the bar: a statement slower than this on a request path or in a periodic job is
// reported (log_min_duration_statement, auto_explain.log_min_duration).
const SlowMS = 100

// Options configure a run.
type Options struct {
	Gpubroker string        // the gpubroker binary (make build-prod's)
	Scale     float64       // multiple of Base
	Requests  int           // requests per route
	JobWindow time.Duration // how long the worker runs its periodic jobs after the routes
	Keep      bool          // keep the cluster and logs
	// Reuse is a cluster kept by an earlier run (-keep): it is started again, migrated up to
	// this binary's migrations and measured without seeding. It is kept again afterwards.
	Reuse string
	Out   io.Writer // the table
	Log   io.Writer // progress; nil: none
}

// Result is what a run measured.
type Result struct {
	Volumes  Volumes
	SeedTook time.Duration
	Reused   string        // the kept cluster measured (Options.Reuse), "" when seeded by this run
	Dir      string        // the cluster's directory (kept with Options.Keep or Reuse)
	Migrate  time.Duration // migrating the reused cluster up
	CatchUp  Timing        // folding what the seed left dirty (CatchUp), before anything is timed
	DBBytes  int64
	Routes   []Timing // customer and ops routes
	Collect  []Timing // each query of the ops collector
	Jobs     []Timing // the periodic jobs as the worker ran them
	Slow     []Statement
}

// Timing is n runs of one thing.
type Timing struct {
	Group, Name string
	N           int
	P50, Max    time.Duration
	Status      string // the HTTP statuses seen, or the error
}

// Statement is one statement over SlowMS, from the server's log (with its plan) or
// pg_stat_statements.
type Statement struct {
	App   string // application_name: gpubroker-api, gpubroker-worker, scale
	MS    float64
	Calls int64
	River bool // River's own (its maintenance services, its fetch): reported, not gated
	Query string
	Plan  string
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "scale: "+format+"\n", args...)
	}
}

// checkDisk refuses a run the temporary directory's filesystem cannot hold.
func checkDisk(v Volumes) error {
	dir := os.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // cannot tell: try
	}
	free := st.Bavail * uint64(st.Bsize)
	need := DiskNeeded(v)
	if free < need {
		return fmt.Errorf("%d orders need about %.1f GB free under %s, and %.1f GB are: lower SCALE or free some space", v.Orders, float64(need)/1e9, dir, float64(free)/1e9)
	}
	return nil
}

// Run seeds, measures and prints the table.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Requests <= 0 {
		o.Requests = 9
	}
	if o.JobWindow <= 0 {
		o.JobWindow = 30 * time.Second
	}
	res := &Result{Volumes: Base.Times(o.Scale), Reused: o.Reuse}
	settings := []string{
		"shared_preload_libraries=pg_stat_statements,auto_explain",
		"pg_stat_statements.track=all",
		fmt.Sprintf("log_min_duration_statement=%d", SlowMS),
		fmt.Sprintf("auto_explain.log_min_duration=%d", SlowMS),
		"auto_explain.log_analyze=on", "auto_explain.log_buffers=on", "auto_explain.log_timing=off", "auto_explain.log_nested_statements=on",
		"log_line_prefix='%m|%a|'", "shared_buffers=512MB", "max_wal_size=2GB", "maintenance_work_mem=256MB", "checkpoint_timeout=15min",
	}
	var cluster *pgcluster.Cluster
	if o.Reuse != "" {
		s, ok, err := readSeeded(o.Reuse)
		if err != nil {
			return nil, err
		}
		if ok {
			res.Volumes, res.SeedTook = s.Volumes, s.SeedTook
		}
		o.logf("reusing %s: %d orders, %d audit events, %d Stripe events", o.Reuse, res.Volumes.Orders, res.Volumes.Audit, res.Volumes.Events)
		// Started again on a new port; its Stop keeps it for the next -reuse.
		kept, err := pgcluster.Reopen(o.Reuse, pgcluster.Options{MaxConns: 200, Settings: settings})
		if err != nil {
			return nil, err
		}
		cluster = kept
	} else {
		if err := checkDisk(res.Volumes); err != nil {
			return nil, err
		}
		o.logf("SCALE=%g: %d orders, %d audit events, %d Stripe events; about %.1f GB of disk", o.Scale, res.Volumes.Orders, res.Volumes.Audit, res.Volumes.Events, float64(DiskNeeded(res.Volumes))/1e9)
		c, err := pgcluster.Start(pgcluster.Options{Prefix: "gpubroker-scale-", MaxConns: 200, Settings: settings})
		if err != nil {
			c.Stop(true) // nil-safe
			return nil, err
		}
		cluster = c
	}
	dir := cluster.Dir
	res.Dir = dir
	var err error
	defer func() { cluster.Stop(o.Keep || err != nil) }()
	url := func(app string) string { return cluster.URL("gpubroker") + "&application_name=" + app }
	start := time.Now()
	if err = gbproc.Migrate(ctx, o.Gpubroker, cluster.URL("gpubroker")); err != nil {
		return nil, err
	}
	if o.Reuse != "" {
		res.Migrate = time.Since(start)
		o.logf("migrated up in %s", res.Migrate.Round(time.Millisecond))
	}
	pool, err := postgres.Open(ctx, url("scale")) // our connection settings (JIT off), as the api and worker
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if o.Reuse == "" {
		start = time.Now()
		if _, err = Seed(ctx, pool, res.Volumes, o.logf); err != nil {
			return nil, err
		}
		res.SeedTook = time.Since(start)
		if err = writeSeeded(dir, seeded{Scale: o.Scale, Volumes: res.Volumes, SeedTook: res.SeedTook}); err != nil {
			return nil, err
		}
	}
	_ = pool.QueryRow(ctx, `SELECT pg_database_size('gpubroker')`).Scan(&res.DBBytes)
	if o.Reuse == "" {
		o.logf("seeded in %s (%.0f orders/s), %.2f GB", res.SeedTook.Round(time.Second), float64(res.Volumes.Orders)/res.SeedTook.Seconds(), float64(res.DBBytes)/1e9)
	}
	start = time.Now()
	folds, err := CatchUp(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("catching up after seeding: %w", err)
	}
	took := time.Since(start)
	res.CatchUp = Timing{Group: "seed", Name: fmt.Sprintf("catch-up after seeding (%d funnel folds, ops_counts)", folds), N: 1, P50: took, Max: took, Status: "ok"}
	o.logf("caught up in %s (%d funnel folds)", took.Round(time.Millisecond), folds)
	if _, err = pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()`); err != nil {
		return nil, err
	}
	logStart := fileSize(filepath.Join(dir, "postgres.log"))

	// The stand-ins, where the outside services stand in production.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	front := "http://" + ln.Addr().String()
	webhookSecret, runpodKey, originSecret, adminPassword := "whsec_"+rand.Text(), "rpa_"+rand.Text(), rand.Text()+rand.Text(), "scale-"+rand.Text()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	stripe := stripesim.New(stripesim.Config{Prefix: "/stripe", PublicURL: front, WebhookURL: front + "/none", WebhookSecret: webhookSecret, Logger: quiet})
	defer stripe.Close()
	mux := http.NewServeMux()
	mux.Handle("/stripe/", stripe)
	mux.Handle("/runpod/", http.StripPrefix("/runpod", runpodsim.New(runpodsim.Options{APIKey: runpodKey})))
	mux.Handle("/ses/", http.StripPrefix("/ses", &sesfake.SES{}))
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	env := func(app string) []string {
		return []string{
			"DATABASE_URL=" + url(app), "PUBLIC_URL=" + front, "ADMIN_PASSWORD=" + adminPassword, "LOG_LEVEL=warn",
			"STRIPE_SECRET_KEY=sk_test_scale", "STRIPE_WEBHOOK_SECRET=" + webhookSecret, "STRIPE_API_BASE=" + front + "/stripe",
			"RUNPOD_API_KEY=" + runpodKey, "RUNPOD_API_BASE=" + front + "/runpod", "TRUSTED_PROXY_HOPS=1",
			"SES_FROM=scale@gpubroker.test", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=scale", "AWS_SECRET_ACCESS_KEY=scale",
			"AWS_ENDPOINT_URL_SESV2=" + front + "/ses",
			"OPS_COLLECT_INTERVAL=10s", "POD_HEALTH_INTERVAL=10s", "RECONCILE_INTERVAL=15s",
		}
	}
	apiProc := &gbproc.Proc{Name: "api", Mode: "api", Bin: o.Gpubroker, LogPath: filepath.Join(dir, "api.log"),
		Env: append(env("gpubroker-api"), "ORIGIN_SECRET="+originSecret), Header: http.Header{api.OriginSecretHeader: {originSecret}}}
	if err = apiProc.Start(ctx); err != nil {
		return nil, err
	}
	defer apiProc.Stop()
	worker := &gbproc.Proc{Name: "worker", Mode: "worker", Bin: o.Gpubroker, LogPath: filepath.Join(dir, "worker.log"), Env: env("gpubroker-worker")}
	workerFrom := time.Now() // retention runs as the worker starts
	if err = worker.Start(ctx); err != nil {
		return nil, err
	}
	defer worker.Stop()
	o.logf("api and worker up")

	c := &client{base: apiProc.URL(), origin: front, originSecret: originSecret, admin: adminPassword, webhookSecret: webhookSecret}
	if err = c.waitCollected(ctx, 2*time.Minute); err != nil {
		return nil, err
	}
	if res.Routes, err = timeRoutes(ctx, c, pool, res.Volumes, o.Requests); err != nil {
		return nil, err
	}
	o.logf("routes timed")
	res.Collect = timeCollector(ctx, pool, o.Requests)
	o.logf("collector queries timed; the worker runs its periodic jobs for %s", o.JobWindow)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(max(0, o.JobWindow-time.Since(workerFrom))):
	}
	if res.Jobs, err = periodicJobs(ctx, pool, workerFrom); err != nil {
		return nil, err
	}
	if ms, ok := c.collectorSeconds(ctx); ok {
		res.Jobs = append(res.Jobs, Timing{Group: "job", Name: "ops collection (api, last)", N: 1, P50: ms, Max: ms})
	}
	if res.Slow, err = slowStatements(ctx, pool, filepath.Join(dir, "postgres.log"), logStart); err != nil {
		return nil, err
	}
	for _, p := range []*gbproc.Proc{apiProc, worker} {
		if crashes := p.Crashes(); len(crashes) > 0 {
			err = errors.New(strings.Join(crashes, "; "))
			return nil, err
		}
	}
	if o.Out != nil {
		res.Print(o.Out)
	}
	return res, nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// client calls the api as CloudFront would (the origin secret) and as a browser would.
type client struct {
	base, origin, originSecret, admin, webhookSecret string
	n                                                int
}

func (c *client) do(ctx context.Context, method, path, body string, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	c.n++
	req.Header.Set(api.OriginSecretHeader, c.originSecret)
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", c.n/65536%256, c.n/256%256, c.n%256))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *client) adminGet(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set(api.OriginSecretHeader, c.originSecret)
	req.SetBasicAuth("admin", c.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitCollected waits for the api's first ops collection (/ops/funnel answers 200).
func (c *client) waitCollected(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st, b, err := c.adminGet(ctx, "/ops/funnel")
		if err == nil && st == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the api's ops numbers were not collected within %s: %d %s %v", within, st, b, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// collectorSeconds reads the api's last collection's duration from /metrics.
func (c *client) collectorSeconds(ctx context.Context) (time.Duration, bool) {
	_, b, err := c.adminGet(ctx, "/metrics")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "gpubroker_collector_duration_seconds "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return time.Duration(f * float64(time.Second)), err == nil
		}
	}
	return 0, false
}

func (c *client) sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(c.webhookSecret))
	t := strconv.FormatInt(time.Now().Unix(), 10)
	mac.Write([]byte(t + "."))
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// route is one timed route: call makes its i-th request.
type route struct {
	group, name string
	call        func(i int) (int, []byte, error)
}

// timeRoutes times each route n times, after one untimed warm-up call.
func timeRoutes(ctx context.Context, c *client, pool *pgxpool.Pool, v Volumes, n int) ([]Timing, error) {
	// The signed-in customer: account 1 (session 1), its newest pod and payment; a busy order
	// for the story (the newest refunded one: webhook events, jobs, audit, emails).
	var podID, orderID, email, piID string
	var paymentID *string
	if err := pool.QueryRow(ctx, `SELECT p.id::text, (SELECT id::text FROM payments WHERE order_id = p.order_id) FROM pods p
		WHERE p.account_id = md5('a1')::uuid ORDER BY p.created_at DESC LIMIT 1`).Scan(&podID, &paymentID); err != nil {
		return nil, fmt.Errorf("the signed-in customer's pod: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT id::text, email, payment_intent_id FROM orders WHERE status = 'captured' ORDER BY created_at DESC OFFSET $1 LIMIT 1`, v.Running+10).
		Scan(&orderID, &email, &piID); err != nil {
		return nil, fmt.Errorf("an order for the story: %w", err)
	}
	cookie := map[string]string{"Cookie": api.SessionCookie + "=" + SessionSecret(1)}
	runID := rand.Text()[:8]
	quote := `{"email":"new-%s-%d@example.com","name":"New","plan":"pro","template":"data-science","gpu":"rtx4090","region":"us-east","hours":2}`
	routes := []route{
		{"customer", "GET /api/catalog", func(int) (int, []byte, error) { return c.do(ctx, "GET", "/api/catalog", "", nil) }},
		{"customer", "POST /api/quote", func(i int) (int, []byte, error) {
			return c.do(ctx, "POST", "/api/quote", fmt.Sprintf(quote, runID, i), nil)
		}},
		{"customer", "POST /api/checkout", func(i int) (int, []byte, error) {
			return c.do(ctx, "POST", "/api/checkout", fmt.Sprintf(quote, runID, i), nil)
		}},
		{"customer", "GET /api/checkout/verify", func(i int) (int, []byte, error) {
			return c.do(ctx, "GET", "/api/checkout/verify?session_id=cs_"+md5hex(fmt.Sprintf("cs%d", v.Orders-v.Running-i)), "", nil)
		}},
		{"customer", "POST /api/stripe/webhook", func(i int) (int, []byte, error) {
			body := fmt.Sprintf(`{"id":"evt_scale_%s_%d","object":"event","api_version":"2023-10-16","type":"checkout.session.expired","created":%d,"data":{"object":{"id":"cs_scale_%s_%d","object":"checkout.session"}}}`,
				runID, i, time.Now().Unix(), runID, i)
			return c.do(ctx, "POST", "/api/stripe/webhook", body, map[string]string{"Stripe-Signature": c.sign([]byte(body)), "Origin": ""})
		}},
		{"customer", "POST /api/login", func(i int) (int, []byte, error) {
			return c.do(ctx, "POST", "/api/login", fmt.Sprintf(`{"email":"user%d@example.com"}`, 2+i), nil)
		}},
		{"customer", "GET /api/me", func(int) (int, []byte, error) { return c.do(ctx, "GET", "/api/me", "", cookie) }},
		{"customer", "GET /api/pods/{id}", func(int) (int, []byte, error) { return c.do(ctx, "GET", "/api/pods/"+podID, "", cookie) }},
		{"customer", "GET /api/pods/{id}/extend", func(int) (int, []byte, error) {
			return c.do(ctx, "GET", "/api/pods/"+podID+"/extend?hours=1", "", cookie)
		}},
		{"customer", "GET /api/me/ssh-keys", func(int) (int, []byte, error) { return c.do(ctx, "GET", "/api/me/ssh-keys", "", cookie) }},
		{"customer", "POST /api/contact", func(i int) (int, []byte, error) {
			return c.do(ctx, "POST", "/api/contact", fmt.Sprintf(`{"name":"N","email":"c%d@example.com","company":"","message":"Hello there, a question."}`, i), nil)
		}},
		{"ops", "GET /metrics", func(int) (int, []byte, error) { return c.adminGet(ctx, "/metrics") }},
		{"ops", "GET /ops/funnel", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/funnel") }},
		{"ops", "GET /ops/", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/") }},
		{"ops", "GET /ops/orders/{id}", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/orders/"+orderID) }},
		{"ops", "GET /ops/orders?q=<email>", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/orders?q="+email) }},
		{"ops", "GET /ops/orders?q=<order id>", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/orders?q="+orderID) }},
		{"ops", "GET /ops/orders?q=<PaymentIntent>", func(int) (int, []byte, error) { return c.adminGet(ctx, "/ops/orders?q="+piID) }},
	}
	if paymentID != nil {
		routes = slices.Insert(routes, 10, route{"customer", "GET /api/me/receipts/{id}", func(int) (int, []byte, error) {
			return c.do(ctx, "GET", "/api/me/receipts/"+*paymentID, "", cookie)
		}})
	}
	var out []Timing
	for _, r := range routes {
		t := Timing{Group: r.group, Name: r.name, N: n}
		statuses := map[int]int{}
		var took []time.Duration
		for i := -1; i < n; i++ {
			start := time.Now()
			st, body, err := r.call(i + 1)
			d := time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
			if st >= 500 {
				return nil, fmt.Errorf("%s: %d %s", r.name, st, body)
			}
			if i >= 0 {
				took = append(took, d)
				statuses[st]++
			}
		}
		t.P50, t.Max = percentiles(took)
		t.Status = statusList(statuses)
		out = append(out, t)
	}
	return out, nil
}

func md5hex(s string) string {
	return fmt.Sprintf("%x", md5sum([]byte(s)))
}

func percentiles(d []time.Duration) (p50, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[(len(d)-1)/2], d[len(d)-1]
}

func statusList(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, strconv.Itoa(k))
	}
	return strings.Join(parts, ",")
}

// timeCollector runs each query of the ops collector n times (opsview's collect, one by one).
func timeCollector(ctx context.Context, pool *pgxpool.Pool, n int) []Timing {
	now := time.Now().UTC()
	type q struct {
		name string
		run  func() error
	}
	var qs []q
	add := func(name string, run func() error) { qs = append(qs, q{name, run}) }
	add("CountFunnel(all)", func() error { _, err := postgres.CountFunnel(ctx, pool, time.Time{}); return err })
	add("GetProvisioningTimes(all)", func() error { _, err := postgres.GetProvisioningTimes(ctx, pool, time.Time{}); return err })
	for _, w := range []struct {
		name string
		span time.Duration
	}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}} {
		since := now.Add(-w.span)
		add("CountFunnel("+w.name+")", func() error { _, err := postgres.CountFunnel(ctx, pool, since); return err })
		add("ProvisioningByDay("+w.name+")", func() error { _, err := postgres.ProvisioningByDay(ctx, pool, since); return err })
		add("Refunds("+w.name+")", func() error { _, err := postgres.Refunds(ctx, pool, since, 100); return err })
	}
	add("CountPods", func() error { _, err := postgres.CountPods(ctx, pool); return err })
	add("CountOrders", func() error { _, err := postgres.CountOrders(ctx, pool); return err })
	add("CountJobs", func() error { _, err := postgres.CountJobs(ctx, pool); return err })
	var audit map[string]int64
	add("CountAuditActions", func() (err error) { audit, err = postgres.CountAuditActions(ctx, pool); return err })
	add("GetTallies", func() error { _, err := postgres.GetTallies(ctx, pool); return err })
	add("GetReconcileSummary", func() error { _, err := postgres.GetReconcileSummary(ctx, pool, audit); return err })
	add("LapsingHolds", func() error { _, err := postgres.LapsingHolds(ctx, pool, 48*time.Hour, 50); return err })
	add("CapturedWithoutPod", func() error { _, err := postgres.CapturedWithoutPod(ctx, pool, 50); return err })
	add("RefundFailures", func() error { _, err := postgres.RefundFailures(ctx, pool, now.Add(-24*time.Hour), 20); return err })
	add("DriftOrders", func() error { _, err := postgres.DriftOrders(ctx, pool, 50); return err })
	add("ReconcileRepairs", func() error { _, err := postgres.ReconcileRepairs(ctx, pool, 20); return err })
	add("LastHealthPass", func() error { _, err := postgres.LastHealthPass(ctx, pool); return err })
	add("RunningInstances (pod_health)", func() error { _, err := postgres.RunningInstances(ctx, pool); return err })
	var out []Timing
	for _, x := range qs {
		t := Timing{Group: "collect", Name: x.name, N: n, Status: "ok"}
		var took []time.Duration
		for i := -1; i < n; i++ {
			start := time.Now()
			if err := x.run(); err != nil {
				t.Status = err.Error()
				break
			}
			if i >= 0 {
				took = append(took, time.Since(start))
			}
		}
		t.P50, t.Max = percentiles(took)
		out = append(out, t)
	}
	return out
}

// periodicKinds are the jobs the worker's leader schedules.
var periodicKinds = []string{"pod_health", "reconcile", "retention", "refresh_offers"}

// periodicJobs reads how long each periodic job's runs took since the worker started.
func periodicJobs(ctx context.Context, pool *pgxpool.Pool, since time.Time) ([]Timing, error) {
	rows, err := pool.Query(ctx, `SELECT kind, state::text, finalized_at - attempted_at FROM river_job
		WHERE kind = ANY($1) AND attempted_at >= $2 AND finalized_at IS NOT NULL ORDER BY id`, periodicKinds, since.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	took := map[string][]time.Duration{}
	states := map[string]map[string]bool{}
	for rows.Next() {
		var kind, state string
		var d time.Duration
		if err := rows.Scan(&kind, &state, &d); err != nil {
			return nil, err
		}
		took[kind] = append(took[kind], d)
		if states[kind] == nil {
			states[kind] = map[string]bool{}
		}
		states[kind][state] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []Timing
	for _, k := range periodicKinds {
		t := Timing{Group: "job", Name: k, N: len(took[k])}
		t.P50, t.Max = percentiles(took[k])
		var st []string
		for s := range states[k] {
			st = append(st, s)
		}
		sort.Strings(st)
		t.Status = strings.Join(st, ",")
		if t.N == 0 {
			t.Status = "did not run"
		}
		out = append(out, t)
	}
	return out, nil
}

// Print writes the table: every timing, then the slow statements with their plans.
func (r *Result) Print(w io.Writer) {
	v := r.Volumes
	fmt.Fprintf(w, "%d accounts, %d orders, %d Stripe events, %d audit events, %d emails, %d sessions, %d tokens, %d finished jobs, %d running pods\n",
		v.Accounts, v.Orders, v.Events, v.Audit, v.Emails, v.Sessions, v.Tokens, v.Jobs, v.Running)
	if r.Reused != "" {
		fmt.Fprintf(w, "reused %s (seeded in %s), migrated up in %s, database %.2f GB\n\n", r.Reused, r.SeedTook.Round(time.Second), r.Migrate.Round(time.Millisecond), float64(r.DBBytes)/1e9)
	} else {
		fmt.Fprintf(w, "seeded in %s (%.0f orders/s), database %.2f GB\n\n", r.SeedTook.Round(time.Second), float64(v.Orders)/r.SeedTook.Seconds(), float64(r.DBBytes)/1e9)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\tn\tp50 ms\tmax ms\tstatus\t")
	for _, group := range [][]Timing{{r.CatchUp}, r.Routes, r.Collect, r.Jobs} {
		for _, t := range group {
			fmt.Fprintf(tw, "%s %s\t%d\t%.1f\t%.1f\t%s\t\n", t.Group, t.Name, t.N, ms(t.P50), ms(t.Max), t.Status)
		}
	}
	tw.Flush()
	ours, river := 0, 0
	for _, s := range r.Slow {
		if s.River {
			river++
		} else {
			ours++
		}
	}
	fmt.Fprintf(w, "\nstatements over %d ms after seeding: %d of ours, %d of River's (reported, not gated)\n", SlowMS, ours, river)
	for _, s := range r.Slow {
		who := s.App
		if s.River {
			who += ", River"
		}
		fmt.Fprintf(w, "\n%.0f ms (%s, %d calls): %s\n", s.MS, who, s.Calls, oneLine(s.Query, 400))
		if s.Plan != "" {
			for _, line := range strings.Split(strings.TrimRight(s.Plan, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Gate is what the issue asks at SCALE=10: customer routes p50 under 10 ms, ops routes under
// 100 ms, each collector query under 100 ms, no statement of ours over 100 ms.
func (r *Result) Gate() []string {
	var bad []string
	for _, t := range r.Routes {
		limit := 100 * time.Millisecond
		if t.Group == "customer" {
			limit = 10 * time.Millisecond
		}
		if t.P50 > limit {
			bad = append(bad, fmt.Sprintf("%s p50 %.1f ms over %s", t.Name, ms(t.P50), limit))
		}
	}
	for _, t := range r.Collect {
		if t.P50 > SlowMS*time.Millisecond {
			bad = append(bad, fmt.Sprintf("collector %s p50 %.1f ms over %d ms", t.Name, ms(t.P50), SlowMS))
		}
	}
	for _, s := range r.Slow {
		if !s.River {
			bad = append(bad, fmt.Sprintf("%.0f ms: %s", s.MS, oneLine(s.Query, 120)))
		}
	}
	return bad
}
