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
)
