package tasks

import "time"

// Tunables of the job system, the one home of each default: config documents and reads them
// (JOB_TIMEOUT, RESCUE_STUCK_JOBS_AFTER, RECONCILE_INTERVAL, POD_HEALTH_INTERVAL), the worker
// and the jobs fall back to them when left zero (tests).
const (
	// DefaultJobTimeout bounds one run of a job (provisioning steps get twice as long).
	DefaultJobTimeout = time.Minute
	// DefaultRescueStuckJobsAfter is when a job whose worker died is run again: more than
	// twice DefaultJobTimeout, so a provisioning step still running is never run twice at once.
	DefaultRescueStuckJobsAfter = 5 * time.Minute
	// DefaultReconcileInterval is how often the reconciler compares orders, Stripe and the
	// providers' instances.
	DefaultReconcileInterval = 10 * time.Minute
	// DefaultPodHealthInterval is how often every running pod's instance is checked.
	DefaultPodHealthInterval = time.Minute
	// OffersInterval is how often the offers feed is refreshed.
	OffersInterval = 5 * time.Minute

	// RetentionInterval is how often the retention job runs.
	RetentionInterval = time.Hour
	// RetentionMaxBatches bounds one retention run: at most this many statements of
	// postgres.RetentionBatch rows per category (a million rows each); a backlog continues at
	// the next run.
	RetentionMaxBatches = 100
	// RetentionRunBudget is how long a retention run starts new batches, well inside
	// DefaultJobTimeout; what is left waits for the next run.
	RetentionRunBudget = 30 * time.Second

	// River's own retention of finished jobs (worker.NewClient; River's defaults are 24 h, 24 h
	// and 7 days). The audit trail keeps the outcome of every job about an order or a pod
	// (jobs.Hooks), so the order's story outlives these.
	//
	// CompletedJobRetention: a week of finished jobs in the River UI, for looking into a
	// customer's question; nothing needs them longer (uniqueness never counts a completed job,
	// refresh_offers' 5-minute period aside).
	CompletedJobRetention = 7 * 24 * time.Hour
	// CancelledJobRetention: a job cancelled itself because acting would be wrong (an amount we
	// did not compute, an order never paid); rare, and worth a month of reading.
	CancelledJobRetention = 30 * 24 * time.Hour
	// DiscardedJobRetention: never deleted by River (-1). A discarded job pages
	// (GPUBrokerJobDiscarded) until ops retry or delete it; River deleting it after a week
	// would clear the page with nobody having acted.
	DiscardedJobRetention time.Duration = -1
)
