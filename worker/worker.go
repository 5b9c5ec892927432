// Package worker builds GPU Broker's River client (queues, workers, periodic jobs, timeouts)
// and the River UI handler ops use to watch and retry jobs.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"riverqueue.com/riverui"

	"gpubroker/jobs"
	"gpubroker/tasks"
)

// Options tune the client; zero values take the production defaults.
type Options struct {
	// MaxWorkers is the default queue's concurrency (most jobs wait on Stripe or a provider).
	MaxWorkers int
	// FetchCooldown and FetchPollInterval trade Postgres load for job pick-up latency.
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// NoPeriodic leaves out the periodic jobs (tests that count offers refreshes).
	NoPeriodic bool
	// PodHealthInterval is how often running pods are checked (POD_HEALTH_INTERVAL); zero: 1 minute.
	PodHealthInterval time.Duration
	// ReconcileInterval is how often the reconciler runs (RECONCILE_INTERVAL); zero: 10 minutes.
	ReconcileInterval time.Duration
	// JobTimeout and RescueStuckJobsAfter (JOB_TIMEOUT, RESCUE_STUCK_JOBS_AFTER); zero: 1 and 5
	// minutes.
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
}

// NewClient returns a River client that works every GPU Broker job.
func NewClient(pool *pgxpool.Pool, deps *jobs.Deps, logger *slog.Logger, opts Options) (*river.Client[pgx.Tx], error) {
	if opts.MaxWorkers == 0 {
		opts.MaxWorkers = 50
	}
	if opts.FetchCooldown == 0 {
		// River's default (100 ms) is tuned for throughput; a buyer waiting on the success page
		// or a Deploy click cares about latency, and 50 fetches/s per queue is cheap at our scale.
		opts.FetchCooldown = 20 * time.Millisecond
	}
	if opts.JobTimeout == 0 {
		opts.JobTimeout = tasks.DefaultJobTimeout
	}
	if opts.RescueStuckJobsAfter == 0 {
		opts.RescueStuckJobsAfter = tasks.DefaultRescueStuckJobsAfter
	}
	workers := river.NewWorkers()
	jobs.Register(workers, deps)
	cfg := &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: opts.MaxWorkers},
			jobs.QueuePayments: {MaxWorkers: 20},
			jobs.QueuePods:     {MaxWorkers: opts.MaxWorkers},
			jobs.QueueEmail:    {MaxWorkers: 10},
		},
		Workers: workers,
		Logger:  logger,
		// River's backoff, with terminations capped at 10 minutes and a hold's release retried
		// well within its margin (jobs.RetryPolicy).
		RetryPolicy: jobs.RetryPolicy{Delay: deps.RetryDelay, Caps: jobs.ConfiguredCaps(deps.Clock)},
		// Every step is a short call to Stripe, a provider or SES; long waits are snoozes.
		JobTimeout: opts.JobTimeout,
		// A worker that died mid-job leaves it running until rescued. River's default (1 h)
		// would leave a paid deploy hanging; 5 minutes is well above the longest step
		// (provisioning's 2 × JobTimeout) and every job is idempotent, so a rescue is safe.
		RescueStuckJobsAfter: opts.RescueStuckJobsAfter,
		// On SIGTERM running jobs get 20 s to finish before their contexts are cancelled, inside
		// the 30 s an orchestrator (ECS) waits before killing the process.
		SoftStopTimeout:   20 * time.Second,
		FetchCooldown:     opts.FetchCooldown,
		FetchPollInterval: opts.FetchPollInterval,
		// River's JobCleaner, set deliberately (tasks/tunables.go says why): completed jobs a
		// week, cancelled ones a month, discarded ones until ops retry or delete them (they page).
		// The outcome of every job about an order or a pod is audited (jobs.Hooks), so the
		// order's story keeps it after River forgets the job.
		CompletedJobRetentionPeriod: tasks.CompletedJobRetention,
		CancelledJobRetentionPeriod: tasks.CancelledJobRetention,
		DiscardedJobRetentionPeriod: tasks.DiscardedJobRetention,
		Hooks:                       jobs.Hooks(deps),
	}
	if !opts.NoPeriodic {
		cfg.PeriodicJobs = jobs.PeriodicJobs(opts.PodHealthInterval, opts.ReconcileInterval)
		if deps.Firewall != nil { // a Lambda key is configured
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, jobs.FirewallPeriodicJob())
		}
	}
	return river.NewClient(riverpgxv5.New(pool), cfg)
}

// NewInsertClient returns a client that only inserts jobs (the api process).
func NewInsertClient(pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: logger})
}

// RiverUIPrefix is where the River UI is mounted.
const RiverUIPrefix = "/ops/riverui"

// RiverUI returns the River UI handler, started, for mounting at RiverUIPrefix behind admin
// auth (it has none of its own).
func RiverUI(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    RiverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating river ui: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("error starting river ui: %w", err)
	}
	return h, nil
}
