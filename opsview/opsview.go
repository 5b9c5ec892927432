// Package opsview is the ops read model: every number ops see, collected from the database on
// an interval into a Snapshot kept in memory. /metrics, /ops/funnel and the ops console all
// read the same Snapshot, so they agree, and no request runs the queries: a slow database makes
// the numbers older (which /metrics says, and ops/alerts.yml pages on), never missing.
//
// The queries are package postgres's (CountFunnel, GetTallies …); the names the numbers go by
// (the funnel's steps, the series) are here; how a page shows them is the api's.
package opsview

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gpubroker"
	"gpubroker/postgres"
)

// DefaultInterval is how often the numbers are collected when no interval is given
// (OPS_COLLECT_INTERVAL).
const DefaultInterval = 30 * time.Second

// FunnelSteps are the funnel's steps in order, the one vocabulary /ops/funnel (its keys), the
// console (its rows) and /metrics (gpubroker_funnel_orders{step}) share. Each counts orders
// (postgres.FunnelCounts says what reaching the step means) and requires the step before.
var FunnelSteps = []string{"checkouts_started", "authorized", "activated", "deployed", "captured", "running"}

// Windows are the spans the console offers, newest orders first: the funnel, provisioning and
// refunds of the orders (pods, refunds) of the last 24 hours, 7 or 30 days.
var Windows = []Window{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// Window is a span the console shows.
type Window struct {
	Name string
	Span time.Duration
}

// Funnel is the funnel of a set of orders, after the visitors that come before any order:
// the views of the landing page ("/") counted by POST /api/pageviews, by whole UTC days
// (postgres.CountVisitors), not people, since no visitor is identified.
type Funnel struct {
	Visitors int64
	postgres.FunnelCounts
}

// Step is one step of a funnel: its name (one of FunnelSteps) and how many orders reached it.
type Step struct {
	Name   string
	Orders int64
}

// Steps are the funnel's counts in FunnelSteps order.
func (f Funnel) Steps() []Step {
	c := f.FunnelCounts
	n := []int64{c.CheckoutsStarted, c.Authorized, c.Activated, c.Deployed, c.Captured, c.Running}
	steps := make([]Step, len(FunnelSteps))
	for i, name := range FunnelSteps {
		steps[i] = Step{name, n[i]}
	}
	return steps
}

// PaymentSuccessRate is the share of paid checkouts (not free trials) whose card hold was
// authorized; nil without any.
func (f Funnel) PaymentSuccessRate() *float64 {
	if f.PaidCheckouts == 0 {
		return nil
	}
	r := float64(f.PaidAuthorized) / float64(f.PaidCheckouts)
	return &r
}

// Span is what the console shows for a Window.
type Span struct {
	Since        time.Time
	Funnel       Funnel
	Provisioning []postgres.ProvisioningDay
	Refunds      []postgres.RefundRow // planned in the window, and every one not made yet
}

// Snapshot is every ops number at one moment. It is never changed once collected.
type Snapshot struct {
	At   time.Time     // when the collection started
	Took time.Duration // how long it ran

	Funnel       Funnel // every order, all time
	Provisioning postgres.ProvisioningTimes
	Spans        map[string]*Span // by Window name

	Pods   []postgres.PodCount // by status and provider
	Orders map[gpubroker.OrderStatus]int64
	Jobs   []postgres.JobCount
	Audit  map[string]int64 // audit events by action, all time
	postgres.Tallies
	Reconcile postgres.ReconcileSummary

	// The console's lists.
	LapsingHolds         []postgres.HoldRow // within 48 hours of lapsing
	WaitingPods          []postgres.WaitingPod
	RefundFailures       []postgres.RefundFailure // the last 24 hours
	Drift                []postgres.DriftRow
	Repairs              []postgres.RepairRow
	Retryable, Discarded int64 // River jobs retryable and discarded, every kind
	// HealthPass is the last pass of the pod health watch (nil before the first).
	HealthPass *postgres.HealthPass
}

// PodsByStatus counts the pods in each status, every status listed (0 when none).
func (s *Snapshot) PodsByStatus() map[gpubroker.PodStatus]int64 {
	out := map[gpubroker.PodStatus]int64{}
	for _, st := range gpubroker.PodStatuses {
		out[st] = 0
	}
	for _, p := range s.Pods {
		out[p.Status] += p.Count
	}
	return out
}

// collect runs every query of the read model. Any failure fails the whole Snapshot: a number
// is never left out or zeroed because its query failed.
func collect(ctx context.Context, q postgres.Querier, now time.Time) (*Snapshot, error) {
	s := &Snapshot{At: now, Spans: map[string]*Span{}}
	var err error
	if s.Funnel.FunnelCounts, err = postgres.CountFunnel(ctx, q, time.Time{}); err != nil {
		return nil, err
	}
	if s.Funnel.Visitors, err = postgres.CountVisitors(ctx, q, time.Time{}); err != nil {
		return nil, err
	}
	if s.Provisioning, err = postgres.GetProvisioningTimes(ctx, q, time.Time{}); err != nil {
		return nil, err
	}
	for _, w := range Windows {
		sp := &Span{Since: now.Add(-w.Span)}
		if sp.Funnel.FunnelCounts, err = postgres.CountFunnel(ctx, q, sp.Since); err != nil {
			return nil, err
		}
		if sp.Funnel.Visitors, err = postgres.CountVisitors(ctx, q, sp.Since); err != nil {
			return nil, err
		}
		if sp.Provisioning, err = postgres.ProvisioningByDay(ctx, q, sp.Since); err != nil {
			return nil, err
		}
		if sp.Refunds, err = postgres.Refunds(ctx, q, sp.Since, 100); err != nil {
			return nil, err
		}
		s.Spans[w.Name] = sp
	}
	if s.Pods, err = postgres.CountPods(ctx, q); err != nil {
		return nil, err
	}
	if s.Orders, err = postgres.CountOrders(ctx, q); err != nil {
		return nil, err
	}
	if s.Jobs, err = postgres.CountJobs(ctx, q); err != nil {
		return nil, err
	}
	for _, j := range s.Jobs {
		switch j.State {
		case "retryable":
			s.Retryable += j.Count
		case "discarded":
			s.Discarded += j.Count
		}
	}
	if s.Audit, err = postgres.CountAuditActions(ctx, q); err != nil {
		return nil, err
	}
	if s.Tallies, err = postgres.GetTallies(ctx, q); err != nil {
		return nil, err
	}
	if s.Reconcile, err = postgres.GetReconcileSummary(ctx, q, s.Audit); err != nil {
		return nil, err
	}
	if s.LapsingHolds, err = postgres.LapsingHolds(ctx, q, 48*time.Hour, 50); err != nil {
		return nil, err
	}
	if s.WaitingPods, err = postgres.CapturedWithoutPod(ctx, q, 50); err != nil {
		return nil, err
	}
	if s.RefundFailures, err = postgres.RefundFailures(ctx, q, now.Add(-24*time.Hour), 20); err != nil {
		return nil, err
	}
	if s.Drift, err = postgres.DriftOrders(ctx, q, 50); err != nil {
		return nil, err
	}
	if s.Repairs, err = postgres.ReconcileRepairs(ctx, q, 20); err != nil {
		return nil, err
	}
	if s.HealthPass, err = postgres.LastHealthPass(ctx, q); err != nil {
		return nil, err
	}
	return s, nil
}

// Collector collects the Snapshot every Interval and keeps the last good one. A collection
// that fails (an error, or slower than Timeout) keeps the one before, is counted
// (gpubroker_collector_failures_total) and logged at error level; the last success's time is
// exported (gpubroker_collector_last_success_timestamp_seconds), so stale numbers page
// (GPUBrokerOpsNumbersStale) instead of going quiet.
type Collector struct {
	DB postgres.Querier
	// Interval is how often it collects (DefaultInterval when zero); Timeout bounds one
	// collection (Interval when zero).
	Interval, Timeout time.Duration
	Logger            *slog.Logger
	Now               func() time.Time

	mu       sync.Mutex // one collection at a time, so an older one never replaces a newer
	snap     atomic.Pointer[Snapshot]
	failures atomic.Int64
	lastErr  atomic.Pointer[string]
	running  atomic.Bool // Run is collecting: requests never collect themselves
}

func (c *Collector) interval() time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return DefaultInterval
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Collect runs one collection now. On success the Snapshot replaces the last one; on failure
// the last one stays, the failure is counted and logged, and the error returned. A collection
// cut short because ctx ended (shutdown) is not a failure.
func (c *Collector) Collect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = c.interval()
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := c.now()
	s, err := collect(cctx, c.DB, start)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(errors.New("collection took longer than its timeout "+timeout.String()), err)
		}
		c.failures.Add(1)
		msg := err.Error()
		c.lastErr.Store(&msg)
		last := "never"
		if old := c.snap.Load(); old != nil {
			last = old.At.Format(time.RFC3339)
		}
		c.logger().ErrorContext(ctx, "error collecting the ops numbers: serving the last ones", "error", err,
			"last_success", last, "failures", c.failures.Load())
		return err
	}
	s.Took = c.now().Sub(start)
	c.snap.Store(s)
	c.lastErr.Store(nil)
	return nil
}

// Run collects every Interval until ctx ends (the first after one Interval: call Collect
// first for numbers at once).
func (c *Collector) Run(ctx context.Context) {
	c.running.Store(true)
	defer c.running.Store(false)
	t := time.NewTicker(c.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = c.Collect(ctx)
		}
	}
}

// Snapshot is the last good Snapshot, nil before the first.
func (c *Collector) Snapshot() *Snapshot { return c.snap.Load() }

// errNotCollected is Latest's answer before the first good collection of a running Collector.
var errNotCollected = errors.New("the ops numbers have not been collected yet: see the log for the collections' errors")

// Latest is the last good Snapshot. Before the first, a Collector that is not Run (tests, a
// server built without main) collects one now; a running one answers an error rather than
// have requests (a scrape, every reload of the console) pile queries onto a database its
// own collections find failing.
func (c *Collector) Latest(ctx context.Context) (*Snapshot, error) {
	if s := c.snap.Load(); s != nil {
		return s, nil
	}
	if c.running.Load() {
		return nil, errNotCollected
	}
	if err := c.Collect(ctx); err != nil {
		return nil, err
	}
	return c.snap.Load(), nil
}

// Status is the collector's own health.
type Status struct {
	Interval    time.Duration
	LastSuccess time.Time // zero before the first
	Took        time.Duration
	Failures    int64  // collections failed since the process started
	LastError   string // the last collection's error; "" when it succeeded
}

// Status reports the collector's health.
func (c *Collector) Status() Status {
	st := Status{Interval: c.interval(), Failures: c.failures.Load()}
	if s := c.snap.Load(); s != nil {
		st.LastSuccess, st.Took = s.At, s.Took
	}
	if e := c.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}
