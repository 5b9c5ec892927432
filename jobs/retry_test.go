package jobs

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/postgres"
)

// Terminations retry at least every 10 minutes however often they failed; other kinds back
// off like River; a test delay replaces both.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	job := func(kind string, attempt int) *rivertype.JobRow {
		return &rivertype.JobRow{Kind: kind, Attempt: attempt, AttemptedAt: &now, Errors: make([]rivertype.AttemptError, attempt-1)}
	}
	p := RetryPolicy{}
	for _, kind := range []string{"terminate", "terminate_instance"} {
		next := p.NextRetry(job(kind, 20))
		require.WithinDuration(t, now.Add(maxTerminateBackoff), next, 2*time.Second, kind)
		require.Less(t, p.NextRetry(job(kind, 1)).Sub(now), time.Minute, "early attempts back off like River")
	}
	require.Greater(t, p.NextRetry(job("capture", 20)).Sub(now), 24*time.Hour, "20⁴ s: River's backoff")
	// Provisioning: a customer is waiting and the deadline bounds the whole; a chaos run saw a
	// pod wait six minutes after four transient provider errors (1, 16, 81, 256 s).
	require.LessOrEqual(t, p.NextRetry(job("provision", 5)).Sub(now), maxProvisionBackoff+time.Second)
	require.Less(t, p.NextRetry(job("provision", 2)).Sub(now), maxProvisionBackoff)
	require.WithinDuration(t, now.Add(time.Second), RetryPolicy{Delay: time.Second}.NextRetry(job("terminate", 20)), time.Second)
}

// A periodic job whose worker was killed mid-run is rescued as a failed attempt: with one
// attempt it would be discarded, and a discarded job pages ops (GPUBrokerJobDiscarded) for
// nothing. Every periodic kind may be retried (found by make chaos).
func TestPeriodicJobsSurviveARescue(t *testing.T) {
	t.Parallel()
	for _, args := range []interface {
		Kind() string
		InsertOpts() river.InsertOpts
	}{PodHealthArgs{}, ReconcileArgs{}, RefreshOffersArgs{}, RetentionArgs{}} {
		require.Greater(t, args.InsertOpts().MaxAttempts, 1, args.Kind())
	}
	require.Len(t, PeriodicJobs(0, 0), 4, "every periodic job is listed above")
}

// A hold's release has the card network's deadline: its retries must fit in the margin before
// it, however many fail (a stored 5xx replayed, a worker killed mid-call). River's backoff
// alone (1, 16, 81, 256 s …) overran a 150 s margin in a chaos run.
func TestHoldReleaseRetriesFitInTheMargin(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	for _, margin := range []time.Duration{150 * time.Second, gpubroker.HoldReleaseMargin} {
		p := RetryPolicy{Caps: ConfiguredCaps(gpubroker.RentalClock{ReleaseMargin: margin})}
		var waited time.Duration
		for attempt := 1; attempt <= releaseRetries; attempt++ {
			waited += p.NextRetry(&rivertype.JobRow{Kind: ReleaseHoldArgs{}.Kind(), Attempt: attempt, AttemptedAt: &now,
				Errors: make([]rivertype.AttemptError, attempt-1)}).Sub(now)
		}
		require.Less(t, waited, margin, "%d retries of a release with a %s margin", releaseRetries, margin)
	}
}

// A health pass left running by a killed worker stays so until River rescues it
// (RESCUE_STUCK_JOBS_AFTER: 5 minutes in production); the next passes must still run, or a pod
// that dies meanwhile is noticed minutes late (a chaos run: a dead pod not failed within 2
// minutes while workers were being killed).
func TestHealthPassesGoOnPastAStuckOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	args, opts := PodHealthPass(time.Second)
	var stuck *rivertype.JobInsertResult
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) (err error) {
		stuck, err = b.inserter.InsertTx(ctx, tx, args, opts)
		return err
	}))
	_, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{killed-worker}' WHERE id = $1`, stuck.Job.ID)
	require.NoError(t, err)

	workers := river.NewWorkers()
	Register(workers, b.deps)
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, QueuePods: {MaxWorkers: 2}, QueuePayments: {MaxWorkers: 2}, QueueEmail: {MaxWorkers: 2}},
		Workers:      workers,
		PeriodicJobs: PeriodicJobs(time.Second, time.Hour),
		// Not rescued within the test: the stuck pass stays running throughout.
		RescueStuckJobsAfter: time.Hour,
		Logger:               slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	require.Eventually(t, func() bool {
		var passes int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'pod_health' AND state = 'completed'`).Scan(&passes))
		return passes >= 2
	}, 15*time.Second, 100*time.Millisecond, "health passes ran while an earlier one was stuck")
}

// A reconcile pass that fails at every attempt (past JOB_TIMEOUT each time, or a worker killed
// under it, or PostgreSQL restarting) must not end discarded: a discarded job pages ops
// (GPUBrokerJobDiscarded) for nothing, since the next pass, an interval later, compares
// everything again. The next passes must also run while one waits for its retry. Found in CI:
// a chaos run ended with "1 reconcile jobs are discarded" (JOB_TIMEOUT=4s, 49 worker kills, a
// PostgreSQL crash).
func TestReconcilePassesAreNeverDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	workers := river.NewWorkers()
	Register(workers, b.deps)
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, QueuePods: {MaxWorkers: 2}, QueuePayments: {MaxWorkers: 2}, QueueEmail: {MaxWorkers: 2}},
		Workers:      workers,
		PeriodicJobs: PeriodicJobs(time.Hour, time.Second),
		RetryPolicy:  RetryPolicy{Delay: 100 * time.Millisecond},
		JobTimeout:   time.Nanosecond, // every pass's first query fails
		Logger:       slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	count := func(state string) (n int) {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = $1`, state).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool {
		require.Zero(t, count("discarded"), "a failing reconcile pass was discarded")
		return count("completed") >= 3
	}, 20*time.Second, 50*time.Millisecond, "reconcile passes went on while every one failed")
	var failed int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = 'completed' AND jsonb_array_length(to_jsonb(errors)) > 0`).Scan(&failed))
	require.Positive(t, failed, "each failed attempt is kept in the job's errors, for ops to read")
}
