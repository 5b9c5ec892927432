// Package jobs holds GPU Broker's River jobs: one kind per step of the journey (process a
// Stripe event, create the account, send an email, capture, provision, terminate, release an
// unused hold, refund, refresh offers). Every worker is idempotent: it re-reads state, acts only
// when the state still calls for it, and commits each state change in one transaction with the
// job that follows from it.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/gpu/ready"
	"gpubroker/lifecycle"
	"gpubroker/offers"
	"gpubroker/tasks"
)

// Inserter enqueues jobs in the caller's transaction; *river.Client[pgx.Tx] is one.
type Inserter = lifecycle.Inserter

// Deps are what the workers need. Fields left nil disable the feature that needs them.
type Deps struct {
	Pool       *pgxpool.Pool
	Catalog    *gpubroker.Catalog
	Payments   gpubroker.Payments
	Broker     *gpu.Broker
	Sender     gpubroker.Sender // nil: the outbox is the only delivery (dev)
	Publisher  offers.Publisher // nil: offers.json is only kept for the dev server
	PublicURL  string
	SalesEmail string
	Logger     *slog.Logger
	Now        func() time.Time
	// Clock is how long a rented hour lasts and how early holds are released (RENTAL_HOUR,
	// HOLD_RELEASE_MARGIN; the zero value is production's).
	Clock gpubroker.RentalClock

	// ProvisionDeadline bounds the time from capture to a running pod before we refund.
	ProvisionDeadline time.Duration
	// StepTimeout bounds one provision step (a launch call or a poll) against a provider that
	// hangs; it must stay under the worker's RescueStuckJobsAfter.
	StepTimeout time.Duration
	// PollInterval is how often a booting instance is checked.
	PollInterval time.Duration
	// Ready tells whether a running instance is usable by its customer (its sshd and IDE
	// answer where they are shown); nil means gpu/ready's checker. Only then does a pod run.
	Ready Readiness
	// BootDeadline is how long one launched instance may take to become usable before it is
	// given up and the pod launched at the next offer (ProvisionDeadline still bounds the
	// whole provisioning, after which the payment is refunded in full).
	BootDeadline time.Duration
	// LostLaunchWait is how long after a launch request whose answer was lost the provider it
	// went to is waited for before the pod is launched elsewhere (the reconciler ends any
	// duplicate).
	LostLaunchWait time.Duration
	// NoCapacityRetries is how many provision attempts may find no capacity before a refund.
	NoCapacityRetries int
	// ReconcileInterval is how often the reconciler runs; each order is compared with Stripe
	// at most every half of it.
	ReconcileInterval time.Duration
	// RetryDelay, when set, replaces River's backoff (RetryPolicy; tests use milliseconds) and the
	// wait before asking Stripe again about a capture whose outcome is unknown.
	RetryDelay time.Duration
	// OnOffers receives every published feed (the dev server serves the latest at /offers.json).
	OnOffers func([]byte)
	// Firewall is Lambda's, when a Lambda key is configured: lambda_firewall keeps it open
	// (FirewallPeriodicJob). nil: no such job.
	Firewall Firewall
}

// Readiness tells whether what a customer is shown of a pod answers (gpu/ready.Checker).
type Readiness interface {
	Check(ctx context.Context, t ready.Target) error
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

// withDefaults fills unset tunables.
func (d *Deps) withDefaults() *Deps {
	c := *d
	if c.ProvisionDeadline == 0 {
		c.ProvisionDeadline = 20 * time.Minute
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = 2 * time.Minute
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Ready == nil {
		c.Ready = &ready.Checker{}
	}
	if c.BootDeadline == 0 {
		c.BootDeadline = 10 * time.Minute
	}
	if c.LostLaunchWait == 0 {
		c.LostLaunchWait = 5 * time.Minute
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.NoCapacityRetries == 0 {
		c.NoCapacityRetries = 3
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &c
}

// Register adds every worker to workers.
func Register(workers *river.Workers, deps *Deps) {
	d := deps.withDefaults()
	river.AddWorker(workers, &StripeEventWorker{d: d})
	river.AddWorker(workers, &CreateAccountWorker{d: d})
	river.AddWorker(workers, &SendEmailWorker{d: d})
	river.AddWorker(workers, &ReleaseHoldWorker{d: d})
	river.AddWorker(workers, &CaptureWorker{d: d})
	river.AddWorker(workers, &ProvisionWorker{d: d})
	river.AddWorker(workers, &TerminateWorker{d: d})
	river.AddWorker(workers, &RefundWorker{d: d})
	river.AddWorker(workers, &UnusedHoursRefundWorker{d: d})
	river.AddWorker(workers, &PodHealthWorker{d: d})
	river.AddWorker(workers, &PodEndingWorker{d: d})
	river.AddWorker(workers, &RefreshOffersWorker{d: d})
	river.AddWorker(workers, &TerminateInstanceWorker{d: d})
	river.AddWorker(workers, &ReconcileWorker{d: d})
	river.AddWorker(workers, &LambdaFirewallWorker{d: d})
	river.AddWorker(workers, &RetentionWorker{d: d})
}

// DefaultReconcileInterval is how often the reconciler runs when nothing says otherwise.
const DefaultReconcileInterval = tasks.DefaultReconcileInterval

// PodHealthPass is the health pass the leader inserts every interval, unique within it: a pass
// left running by a killed worker stays so until River rescues it (RESCUE_STUCK_JOBS_AFTER, 5
// minutes in production), and unique() would keep every pass out meanwhile, so no death is
// noticed. A rescued or failed pass's retry checks nothing (PodHealthWorker), and a pass takes
// far less than its interval (1.4 s over 10,000 pods), so two dead checks are an interval apart.
func PodHealthPass(interval time.Duration) (river.JobArgs, *river.InsertOpts) {
	opts := PodHealthArgs{}.InsertOpts()
	opts.UniqueOpts = tasks.UniquePerPeriod(interval)
	return PodHealthArgs{}, &opts
}

// ReconcilePass is the reconcile pass the leader inserts every interval, unique within it, for
// the reason PodHealthPass is: a pass left running by a killed worker, or waiting for its retry,
// must not keep the next ones out.
func ReconcilePass(interval time.Duration) (river.JobArgs, *river.InsertOpts) {
	opts := ReconcileArgs{}.InsertOpts()
	opts.UniqueOpts = tasks.UniquePerPeriod(interval)
	return ReconcileArgs{}, &opts
}

// PeriodicJobs are the jobs the leader schedules: offers every 5 minutes, on start too, the
// health check of running pods every podHealth (zero: 1 minute), the reconciler every
// reconcile (zero: 10 minutes) and retention every hour, on start too.
func PeriodicJobs(podHealth, reconcile time.Duration) []*river.PeriodicJob {
	if podHealth <= 0 {
		podHealth = tasks.DefaultPodHealthInterval
	}
	if reconcile <= 0 {
		reconcile = DefaultReconcileInterval
	}
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(podHealth),
			func() (river.JobArgs, *river.InsertOpts) { return PodHealthPass(podHealth) },
			&river.PeriodicJobOpts{ID: "pod_health"}),
		river.NewPeriodicJob(river.PeriodicInterval(tasks.OffersInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RefreshOffersArgs{}, nil },
			&river.PeriodicJobOpts{ID: "refresh_offers", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(reconcile),
			func() (river.JobArgs, *river.InsertOpts) { return ReconcilePass(reconcile) },
			&river.PeriodicJobOpts{ID: "reconcile"}),
		RetentionPeriodicJob(),
	}
}

// Queues (tasks.Queue*): each stage of a journey has its own.
const (
	QueuePayments = tasks.QueuePayments
	QueuePods     = tasks.QueuePods
	QueueEmail    = tasks.QueueEmail
)

// client returns the River client running the current job, to enqueue follow-ups in the
// job's own transaction.
func client(ctx context.Context) Inserter {
	return river.ClientFromContext[pgx.Tx](ctx)
}
