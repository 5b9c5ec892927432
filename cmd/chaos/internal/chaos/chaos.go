// Package chaos proves the product's promise under faults (make chaos): a crash, an outage or a
// duplicated webhook never loses money or a pod.
//
// Run starts a PostgreSQL cluster of its own, the stand-ins in this process (the Stripe
// stand-in and a RunPod API on the GPU simulator, which outlive every gpubroker process, and a
// CloudFront-like front that routes /api/ to the api), one `gpubroker api` and two `gpubroker
// worker` processes of the real binary in production mode, pointed at the stand-ins by
// configuration. It drives customers through sign-up, activation, deploy, extensions, early
// stops and instance deaths, while it kill -9s a random worker every few seconds (and restarts
// it), crashes PostgreSQL once, injects provider and Stripe faults, and redelivers webhooks
// twice and out of order. It also makes drift on purpose for the reconciler: an instance
// nobody owns, a captured pod whose provisioning job is lost, a refund made by hand at Stripe.
// Then it waits for quiet and checks the three ledgers (PostgreSQL, Stripe's, the provider's)
// against what each customer did (check.go).
package chaos

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker"
	"gpubroker/billing"
	"gpubroker/billing/stripesim"
	"gpubroker/cmd/internal/gbproc"
	"gpubroker/cmd/internal/pgcluster"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/jobs"
	"gpubroker/site"
)

// bootDelay is how long a simulated GPU boots.
const bootDelay = 2 * time.Second

// Timings the processes run with. Production uses JOB_TIMEOUT=1m and
// RESCUE_STUCK_JOBS_AFTER=5m; a run this short needs a killed worker's jobs back within
// seconds, and none of its steps takes long (the stand-ins answer at once, hangs are cut at
// the job timeout).
var processEnv = []string{
	"JOB_TIMEOUT=4s", "RESCUE_STUCK_JOBS_AFTER=10s", "POD_HEALTH_INTERVAL=1s", "RECONCILE_INTERVAL=3s", "LOG_LEVEL=info",
}

// The run's clock: a rented hour lasts RentalHour (RENTAL_HOUR), so every pod reaches the end
// of its paid time within the run; card holds last holdLifetime at the Stripe stand-in and
// undeployed ones are released releaseMargin before (HOLD_RELEASE_MARGIN).
const (
	holdLifetime  = 6 * time.Minute
	releaseMargin = 150 * time.Second
)

// Options configure a run.
type Options struct {
	Gpubroker   string        // the gpubroker binary (a production build)
	Customers   int           // customers driven through the product
	Concurrency int           // customers at a time
	Workers     int           // gpubroker worker processes
	KillEvery   time.Duration // mean time between worker kills
	Seed        uint64        // randomness (0: random)
	Quiet       time.Duration // how long to wait for quiet after the last customer
	Keep        bool          // keep the run's directory (logs, cluster) even when it passes
	RentalHour  time.Duration // how long a rented hour lasts in the run (RENTAL_HOUR)
	Log         io.Writer     // progress lines; nil: none
}

// Result is what a run found.
type Result struct {
	Customers, Kills, PGRestarts, Faults, Redeliveries int
	// MoneyFaults are the aimed faults armed and the ones that struck; MoneyKinds says it per
	// path and kind.
	MoneyArmed, MoneyStruck int
	MoneyKinds              string
	// SimulatedHours is how many rented hours the run's clock went through.
	SimulatedHours float64
	// OpsRetries counts the finished jobs ops retried from the River UI after the run.
	OpsRetries int
	// Rescued counts the jobs River rescued from a killed worker (RescueStuckJobsAfter).
	Rescued int
	// Recovery is the time from the last kill to quiet: every job run, every pod steady.
	Recovery   time.Duration
	Elapsed    time.Duration
	Violations []string
	Dir        string
}

// Line is the one-line summary.
func (r *Result) Line() string {
	return fmt.Sprintf("chaos: customers=%d kills=%d pg_restarts=%d faults=%d money_faults=%d/%d simulated_hours=%.0f redeliveries=%d ops_retries=%d violations=%d rescued_jobs=%d recovery_after_last_kill=%.1fs elapsed=%.0fs",
		r.Customers, r.Kills, r.PGRestarts, r.Faults, r.MoneyStruck, r.MoneyArmed, r.SimulatedHours, r.Redeliveries, r.OpsRetries, len(r.Violations), r.Rescued, r.Recovery.Seconds(), r.Elapsed.Seconds())
}

// run is one chaos run's world.
type run struct {
	opts    Options
	dir     string
	cluster *pgcluster.Cluster
	pool    *pgxpool.Pool
	front   *front
	api     *gbproc.Proc
	workers []*gbproc.Proc
	stripe  *billing.Client // ops' own Stripe access (the refund by hand)
	catalog *gpubroker.Catalog

	ctx    context.Context // the run's, for restarts from inside a call
	procMu sync.Mutex      // one kill or restart of the workers at a time
	aims   aims
	// randomFaults are the faultLoop's Stripe faults, disarmed by calm (aimed ones stay).
	randomFaults []*stripesim.Armed

	mu       sync.Mutex
	rng      *mrand.Rand
	lastKill time.Time
	// killTimes are when workers were killed: a send re-made after a kill mid-send is the
	// outbox's at-least-once, not a bug (check.go).
	killTimes []time.Time
	orphanID  string // the instance started behind our back
	outcomes  []*outcome

	kills, restarts, faults, redeliveries atomic.Int64
}

func (r *run) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, "chaos: "+format+"\n", args...)
	}
}

func (r *run) rand(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.IntN(n)
}

// Defaults are the run's sizes where Options leaves them zero (make chaos's flags show them).
var Defaults = Options{Customers: 50, Concurrency: 25, Workers: 2, KillEvery: 10 * time.Second, Quiet: 5 * time.Minute, RentalHour: time.Minute}

// Run runs the chaos and returns what it found; err is for a run that could not be made at all.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	o.Customers = cmp.Or(max(o.Customers, 0), Defaults.Customers)
	o.Concurrency = cmp.Or(max(o.Concurrency, 0), Defaults.Concurrency)
	o.Workers = cmp.Or(max(o.Workers, 0), Defaults.Workers)
	o.KillEvery = cmp.Or(max(o.KillEvery, 0), Defaults.KillEvery)
	o.Quiet = cmp.Or(max(o.Quiet, 0), Defaults.Quiet)
	o.RentalHour = cmp.Or(max(o.RentalHour, 0), Defaults.RentalHour)
	if o.Seed == 0 {
		o.Seed = mrand.Uint64()
	}
	start := time.Now()
	r := &run{opts: o, ctx: ctx, rng: mrand.New(mrand.NewPCG(o.Seed, 1))}
	res = &Result{Customers: o.Customers}
	defer func() { res.Elapsed = time.Since(start) }()

	// Durable, as production's database is: with synchronous_commit off a crash loses commits
	// already acknowledged (an order answered 201 vanished in an early run).
	r.cluster, err = pgcluster.Start(pgcluster.Options{Prefix: "gpubroker-chaos-", MaxConns: 300})
	if r.cluster != nil {
		r.dir = r.cluster.Dir
		res.Dir = r.dir
	}
	defer func() {
		r.shutdown()
		r.cluster.Stop(o.Keep || err != nil || (res != nil && len(res.Violations) > 0))
	}()
	if err != nil {
		return res, fmt.Errorf("error starting PostgreSQL: %w", err)
	}
	r.logf("seed %d, logs in %s", r.opts.Seed, r.dir)
	dbURL := r.cluster.URL("gpubroker")
	if err := gbproc.Migrate(ctx, o.Gpubroker, dbURL); err != nil {
		return res, err
	}
	if r.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		return res, err
	}
	if r.catalog, err = site.Catalog(); err != nil {
		return res, err
	}
	var images []string
	for _, t := range r.catalog.Templates {
		images = append(images, t.Image)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	apiPort, err := pgcluster.FreePort()
	if err != nil {
		return res, err
	}
	webhookSecret, runpodKey, originSecret := "whsec_"+rand.Text(), "rpa_"+rand.Text(), rand.Text()+rand.Text()
	r.front = newFront(ln, fmt.Sprintf("127.0.0.1:%d", apiPort), webhookSecret, runpodKey, originSecret, images, holdLifetime, r.killAll, slog.New(slog.NewTextHandler(r.logFile("stand-ins"), &slog.HandlerOptions{Level: slog.LevelWarn})))
	r.stripe = billing.New(billing.Config{SecretKey: "sk_test_ops", APIBase: r.front.url + stripePrefix})

	env := append([]string{
		"DATABASE_URL=" + dbURL, "PUBLIC_URL=" + r.front.url, "ADMIN_PASSWORD=chaos-" + rand.Text(),
		"STRIPE_SECRET_KEY=sk_test_chaos", "STRIPE_WEBHOOK_SECRET=" + webhookSecret, "STRIPE_API_BASE=" + r.front.url + stripePrefix,
		"RUNPOD_API_KEY=" + runpodKey, "RUNPOD_API_BASE=" + r.front.url + runpodPrefix,
		"RUNPOD_PROXY_URL=" + r.front.url + runpodProxyPrefix + "/{pod}-{port}/",
		"TRUSTED_PROXY_HOPS=1",
		"RENTAL_HOUR=" + o.RentalHour.String(), "HOLD_RELEASE_MARGIN=" + releaseMargin.String(),
		// Every email goes out through the real SES SDK to the counting fake.
		"SES_FROM=chaos@gpubroker.test", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=chaos", "AWS_SECRET_ACCESS_KEY=chaos",
		"AWS_ENDPOINT_URL_SESV2=" + r.front.url + sesPrefix,
	}, processEnv...)
	// As in production, only the api is behind the CDN, and it answers the front alone.
	r.api = r.proc("api", "api", append(slices.Clip(env), "ORIGIN_SECRET="+originSecret))
	r.api.Port = apiPort
	if err := r.api.Start(ctx); err != nil {
		return res, err
	}
	for i := range o.Workers {
		w := r.proc(fmt.Sprintf("worker-%d", i+1), "worker", env)
		if err := w.Start(ctx); err != nil {
			return res, err
		}
		r.workers = append(r.workers, w)
	}
	r.logf("api and %d workers up behind %s", o.Workers, r.front.url)

	// The chaos, while the customers go through the product.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	for _, loop := range []func(context.Context){r.killLoop, r.faultLoop, r.redeliverLoop} {
		chaosWG.Go(func() { loop(chaosCtx) })
	}
	chaosWG.Go(func() { r.orphan(chaosCtx) })

	clockStart := time.Now()
	r.customers(ctx)
	stopChaos()
	chaosWG.Wait()
	r.calm()
	r.logf("customers done; %d kills, %d PostgreSQL restarts, %d faults; waiting for quiet", r.kills.Load(), r.restarts.Load(), r.faults.Load())

	// A storm of old events, newest first, as Stripe's retries after an outage might bring them.
	events := r.redeliverable()
	for _, ev := range slices.Backward(events) {
		if _, err := r.front.stripe.Resend(ctx, ev.ID); err == nil {
			r.redeliveries.Add(1)
		}
	}

	quietAt, quietErr := r.waitQuiet(ctx)
	if quietErr == nil {
		// Ops press Retry in the River UI on finished money and email jobs, as they might at
		// 3 a.m. on the wrong row: nothing may happen twice.
		if res.OpsRetries, err = r.opsRetry(ctx); err != nil {
			return res, err
		}
		if res.OpsRetries > 0 {
			_, quietErr = r.waitQuiet(ctx)
		}
	}
	res.SimulatedHours = time.Since(clockStart).Hours() / o.RentalHour.Hours()
	r.mu.Lock()
	if !r.lastKill.IsZero() {
		res.Recovery = quietAt.Sub(r.lastKill)
	}
	r.mu.Unlock()
	_ = r.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE errors::text LIKE '%Stuck job rescued%'`).Scan(&res.Rescued)
	res.Kills, res.PGRestarts, res.Faults, res.Redeliveries = int(r.kills.Load()), int(r.restarts.Load()), int(r.faults.Load()), int(r.redeliveries.Load())
	if quietErr != nil {
		res.Violations = append(res.Violations, quietErr.Error())
	}
	res.Violations = append(res.Violations, r.check(ctx)...)
	var missed []string
	res.MoneyArmed, res.MoneyStruck, res.MoneyKinds, missed = r.aims.report()
	res.Violations = append(res.Violations, missed...)
	return res, nil
}

func (r *run) logFile(name string) io.Writer {
	f, err := os.OpenFile(filepath.Join(r.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

// proc is a gpubroker process of the run, its log in the run's directory.
func (r *run) proc(name, mode string, env []string) *gbproc.Proc {
	return &gbproc.Proc{Name: name, Mode: mode, Bin: r.opts.Gpubroker, LogPath: filepath.Join(r.dir, name+".log"), Env: env}
}

// procs are the gpubroker processes, the api first (nil before it is made).
func (r *run) procs() []*gbproc.Proc { return append([]*gbproc.Proc{r.api}, r.workers...) }

// shutdown stops the processes gracefully and the stand-ins.
func (r *run) shutdown() {
	var wg sync.WaitGroup
	for _, p := range r.procs() {
		if p != nil && !p.Exited() {
			wg.Go(p.Stop)
		}
	}
	wg.Wait()
	if r.front != nil {
		r.front.close()
	}
	if r.pool != nil {
		r.pool.Close()
	}
}

// customers drives every customer, Concurrency at a time, and crashes PostgreSQL once when
// half of them have started.
func (r *run) customers(ctx context.Context) {
	sem := make(chan struct{}, r.opts.Concurrency)
	var wg sync.WaitGroup
	for i := range r.opts.Customers {
		if i == r.opts.Customers/2 {
			wg.Go(func() { r.crashPostgres(ctx) })
		}
		sem <- struct{}{}
		c := newCustomer(r, i)
		r.mu.Lock()
		r.outcomes = append(r.outcomes, c.out)
		r.mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			c.journey(ctx)
			if c.out.err != nil {
				r.logf("customer %d (%s): %v", c.i, c.out.scenario, c.out.err)
			}
		})
	}
	wg.Wait()
}

// crashPostgres stops the server as a crash would and starts it again a second later.
func (r *run) crashPostgres(ctx context.Context) {
	r.logf("crashing PostgreSQL")
	if err := r.cluster.Crash(time.Second); err != nil {
		r.logf("PostgreSQL restart failed: %v", err)
		return
	}
	r.restarts.Add(1)
}

// killLoop kill -9s a random worker every KillEvery on average and starts it again.
func (r *run) killLoop(ctx context.Context) {
	for {
		d := r.opts.KillEvery/2 + time.Duration(r.rand(int(r.opts.KillEvery)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		w := r.workers[r.rand(len(r.workers))]
		r.procMu.Lock()
		w.Kill()
		r.kills.Add(1)
		r.mu.Lock()
		r.lastKill = time.Now()
		r.killTimes = append(r.killTimes, r.lastKill)
		r.mu.Unlock()
		time.Sleep(time.Duration(200+r.rand(800)) * time.Millisecond)
		if w.Exited() {
			if err := w.Start(context.WithoutCancel(ctx)); err != nil {
				r.logf("restarting %s: %v", w.Name, err)
			}
		}
		r.procMu.Unlock()
	}
}

// faultLoop injects one provider or Stripe fault every second or two, each lasting until the
// next.
func (r *run) faultLoop(ctx context.Context) {
	rp, ss := r.front.runpod.Sim, r.front.stripe
	faults := []func(){
		func() { rp.FailNext(sim.OpLaunch, &gpu.RateLimitedError{RetryAfter: time.Second}, 1) },
		func() { rp.FailNext(sim.OpGet, gpu.ErrUnavailable, 2) },
		func() { rp.FailNext(sim.OpInstances, gpu.ErrUnavailable, 1) },
		func() { rp.FailAfterLaunch(1) }, // the launch answer is lost after the pod was created
		func() { rp.FailNext(sim.OpTerminate, gpu.ErrUnavailable, 1) },
		func() { rp.SetNoCapacityAll(true); time.Sleep(1500 * time.Millisecond); rp.SetNoCapacityAll(false) },
		func() { rp.Hang(sim.OpGet, 2*time.Second); time.Sleep(3 * time.Second); rp.Hang(sim.OpGet, 0) },
		// Captures, releases and refunds meet aimed faults (aim.go), every kind on every path;
		// a random one there could strike first and leave an aimed one never struck.
		func() {
			r.randomFault(stripesim.Fault{Method: "GET", Path: "/v1/payment_intents/*", Mode: stripesim.FailBefore, Times: 1})
		},
		func() { // webhooks held back, then delivered newest first
			ss.PauseDelivery(true)
			before := len(ss.Events())
			time.Sleep(2 * time.Second)
			ss.PauseDelivery(false)
			held := ss.Events()[before:]
			for _, ev := range slices.Backward(held) {
				_, _ = ss.Resend(context.WithoutCancel(ctx), ev.ID) // their first delivery
			}
		},
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(800+r.rand(1200)) * time.Millisecond):
		}
		// One fault at a time: the last one's leftovers (a queued failure nothing consumed)
		// go first, so failures never pile up on a rare call.
		r.calm()
		faults[r.rand(len(faults))]()
		r.faults.Add(1)
	}
}

// calm clears every random fault switch left on; aimed faults wait for their call.
func (r *run) calm() {
	r.front.runpod.Sim.ClearFaults()
	r.mu.Lock()
	for _, a := range r.randomFaults {
		a.Disarm()
	}
	r.randomFaults = nil
	r.mu.Unlock()
	r.front.stripe.PauseDelivery(false)
}

// randomFault injects one of faultLoop's Stripe faults.
func (r *run) randomFault(f stripesim.Fault) {
	a := r.front.stripe.InjectFault(f)
	r.mu.Lock()
	r.randomFaults = append(r.randomFaults, a)
	r.mu.Unlock()
}

// redeliverLoop sends a few already delivered events again, in random order.
func (r *run) redeliverLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		events := r.redeliverable()
		for range min(3, len(events)) {
			ev := events[r.rand(len(events))]
			if _, err := r.front.stripe.Resend(ctx, ev.ID); err == nil {
				r.redeliveries.Add(1)
			}
		}
	}
}

// orphan starts an instance named as ours at the provider behind the product's back (a launch
// whose pod row was lost): the reconciler must terminate it.
func (r *run) orphan(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(3 * time.Second):
	}
	offers, err := r.front.runpod.Sim.ListOffers(context.WithoutCancel(ctx), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	if err != nil || len(offers) == 0 {
		r.logf("orphan: no offer: %v", err)
		return
	}
	name := jobs.InstanceName(uuidLike())
	for range 20 { // the fault loop may be failing launches
		in, err := r.front.runpod.Sim.Launch(context.WithoutCancel(ctx), gpu.LaunchRequest{Offer: offers[0], Name: name, Image: r.catalog.Templates[0].Image, IDE: gpu.IDEJupyter})
		if err == nil {
			r.mu.Lock()
			r.orphanID = in.ID
			r.mu.Unlock()
			r.logf("orphan instance %s started behind the product's back", in.ID)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func uuidLike() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// strand waits until the pod is provisioning, then loses its provisioning job and fails the
// pod without a refund, as a bug would: the reconciler must refund the capture and end
// whatever instance was launched.
func (r *run) strand(ctx context.Context, o *outcome) error {
	return until(ctx, "the pod to provision", 2*time.Minute, func() (bool, error) {
		tag, err := r.pool.Exec(ctx, `WITH lost AS (DELETE FROM river_job WHERE kind = 'provision' AND args @> jsonb_build_object('pod_id', $1::text))
			UPDATE pods SET status = 'failed', error = 'chaos: the provisioning job was lost' WHERE id::text = $1 AND status = 'provisioning'`, o.podID)
		if err != nil {
			r.logf("strand: %v", err) // the database may be restarting
			return false, nil
		}
		return tag.RowsAffected() == 1, nil
	})
}

// kill makes the pod's instance die at the provider, as a host failure would, and waits for
// the product to notice.
func (r *run) kill(ctx context.Context, o *outcome) error {
	var instanceID string
	if err := r.pool.QueryRow(ctx, `SELECT instance_id FROM pods WHERE id = $1`, o.podID).Scan(&instanceID); err != nil {
		return err
	}
	o.killedAt = time.Now()
	if !r.front.runpod.Sim.Fail(instanceID, "chaos: the host failed") {
		return fmt.Errorf("instance %s was not live", instanceID)
	}
	err := until(ctx, "the dead pod to be noticed", 2*time.Minute, func() (bool, error) {
		var status string
		err := r.pool.QueryRow(ctx, `SELECT status FROM pods WHERE id = $1`, o.podID).Scan(&status)
		return err == nil && status == string(gpubroker.PodFailed), nil
	})
	o.sawDead = time.Now()
	return err
}

// manualRefund is what ops refund by hand in Stripe's dashboard in the manual scenario.
const manualRefund = 100

// refundByHand refunds part of the running pod's payment at Stripe, outside the product: the
// reconciler must report the disagreement with our ledger.
func (r *run) refundByHand(ctx context.Context, o *outcome) error {
	var pi string
	if err := r.pool.QueryRow(ctx, `SELECT payment_intent_id FROM orders WHERE id = $1`, o.orderID).Scan(&pi); err != nil {
		return err
	}
	// Two ops refund half each at once (two clicks, two keys): two distinct charge.refunded
	// events on one charge, delivered together, must both be stored and processed.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, half := range []string{"a", "b"} {
		wg.Go(func() { errs[i] = r.refundHalfByHand(ctx, pi, "by-hand-"+o.orderID+"-"+half) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	o.manualCent = manualRefund
	return nil
}

// refundHalfByHand refunds half of manualRefund under key. Ops' click may meet the injected
// faults too: like the product, it looks for the refund by its key before asking again under a
// new idempotency key.
func (r *run) refundHalfByHand(ctx context.Context, pi, key string) error {
	var last error
	for attempt := 1; attempt <= 20; attempt++ {
		if found, err := r.stripe.FindRefund(ctx, pi, key); err == nil && found != nil {
			return nil
		}
		_, last = r.stripe.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: pi, Amount: manualRefund / 2, Key: key, IdempotencyKey: gpubroker.RetryKey(key, 1, attempt)})
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("refund by hand: %w", last)
}

// waitQuiet waits until nothing is left to do: no job waiting or running, every pod in a
// steady state, no instance at the provider without its running pod, and the reconciler has
// seen the drift made on purpose. It returns when that held twice in a row.
func (r *run) waitQuiet(ctx context.Context) (time.Time, error) {
	deadline := time.Now().Add(r.opts.Quiet)
	calm := 0
	var why string
	for time.Now().Before(deadline) {
		why = r.busy(ctx)
		if why == "" {
			calm++
			if calm == 2 {
				return time.Now(), nil
			}
		} else {
			calm = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Now(), fmt.Errorf("not quiet after %s: %s", r.opts.Quiet, why)
}

// jobsToRun matches the jobs still to run or running, leaving out the periodic ones, which
// are always about to run again.
// Scheduled ones count when due within five minutes: with the run's clock, the ends of paid
// time, reminders and hold releases all fall within the run.
const jobsToRun = `(state IN ('available', 'running', 'retryable', 'pending') OR (state = 'scheduled' AND scheduled_at < now() + interval '5 minutes'))
	AND kind NOT IN ('pod_health', 'reconcile', 'refresh_offers')`

// busy says what is still going on, or "".
func (r *run) busy(ctx context.Context) string {
	var jobs, pods int
	var kinds string
	err := r.pool.QueryRow(ctx, `SELECT count(*), COALESCE(string_agg(DISTINCT kind, ','), '') FROM river_job WHERE `+jobsToRun).Scan(&jobs, &kinds)
	if err != nil {
		return err.Error()
	}
	if jobs > 0 {
		return fmt.Sprintf("%d jobs to run (%s)", jobs, kinds)
	}
	// Every rental ends within the run: a running pod is still on its way (one past its time
	// holds quiet off until Quiet runs out, and the checks name it).
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM pods WHERE status IN ('deploying', 'provisioning', 'terminating', 'running')`).Scan(&pods); err != nil {
		return err.Error()
	}
	if pods > 0 {
		return fmt.Sprintf("%d pods on their way", pods)
	}
	if extra := r.strayInstances(ctx); len(extra) > 0 {
		return "instances without a running pod: " + strings.Join(extra, ", ")
	}
	var drift int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE drift IS NOT NULL`).Scan(&drift); err != nil {
		return err.Error()
	}
	if r.expectsDrift() && drift == 0 {
		return "the reconciler has not reported the refund made by hand yet"
	}
	for _, p := range r.procs() {
		if p.Exited() {
			return p.Name + " is down"
		}
	}
	return ""
}

func (r *run) expectsDrift() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.outcomes {
		if o.manualCent > 0 {
			return true
		}
	}
	return false
}

// strayInstances are the instances alive at the provider that no running pod owns.
func (r *run) strayInstances(ctx context.Context) []string {
	rows, err := r.pool.Query(ctx, `SELECT instance_id FROM pods WHERE status = 'running' AND instance_id IS NOT NULL`)
	if err != nil {
		return []string{err.Error()}
	}
	owned := map[string]bool{}
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			owned[id] = true
		}
	}
	rows.Close()
	var out []string
	for _, rec := range r.front.runpod.Sim.Records() {
		if rec.Status != gpu.StateTerminated && !owned[rec.ID] {
			out = append(out, rec.ID+" ("+string(rec.Status)+")")
		}
	}
	return out
}

// redeliverable are the events the chaos may send again: all but those of customers who run
// with redelivery off, once delivered. Stripe does not send again an event we answered 200, so
// those customers' orders must go through on every event's first delivery.
func (r *run) redeliverable() []stripesim.Event {
	r.mu.Lock()
	var ids []string
	for _, o := range r.outcomes {
		if o.noRedeliver {
			ids = append(ids, o.ids...)
		}
	}
	r.mu.Unlock()
	var out []stripesim.Event
	for _, ev := range r.front.stripe.Events() {
		if ev.Delivered && slices.ContainsFunc(ids, func(id string) bool { return id != "" && bytes.Contains(ev.Raw, []byte(id)) }) {
			continue
		}
		out = append(out, ev)
	}
	return out
}
