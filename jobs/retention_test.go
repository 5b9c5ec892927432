package jobs

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"gpubroker/postgres"
)

// startClient runs a real River client with every worker, the given periodic jobs and the
// outcome hook, as worker.NewClient does.
func startClient(t *testing.T, b *testBundle, periodic []*river.PeriodicJob, extra func(*river.Workers)) *river.Client[pgx.Tx] {
	t.Helper()
	ctx := context.Background()
	workers := river.NewWorkers()
	Register(workers, b.deps)
	if extra != nil {
		extra(workers)
	}
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(b.pool), &river.Config{
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, QueuePods: {MaxWorkers: 2}, QueuePayments: {MaxWorkers: 2}, QueueEmail: {MaxWorkers: 1}},
		Workers:       workers,
		PeriodicJobs:  periodic,
		Hooks:         Hooks(b.deps),
		Logger:        slog.New(slog.DiscardHandler),
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.WithoutCancel(ctx)) })
	return client
}

// Issue 24.4: the worker's River client runs retention on start and every hour. One run
// empties a category of 25,000 expired rows, 10,000 at a time, and leaves every row on the
// near side of its boundary.
func TestRetentionJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	now := time.Now().UTC()
	var acct string
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		a, _, err := postgres.UpsertAccount(ctx, tx, "old@example.com", "Ada", "")
		acct = a.ID
		return err
	}))
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := b.pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`INSERT INTO sessions (hash, account_id, created_at, expires_at)
		SELECT decode(md5(i::text), 'hex'), $1, $2::timestamptz - interval '60 days', $2::timestamptz - i * interval '1 second'
		FROM generate_series(1, 25000) i`, acct, now)
	_, _, err := postgres.CreateSession(ctx, b.pool, acct, now)
	require.NoError(t, err)
	exec(`INSERT INTO tokens (hash, account_id, purpose, created_at, expires_at, used_at) VALUES
		('used-31d', $1, 'login', $2::timestamptz - interval '31 days', $2::timestamptz - interval '31 days' + interval '30 minutes', $2::timestamptz - interval '31 days'),
		('used-29d', $1, 'login', $2::timestamptz - interval '29 days', $2::timestamptz - interval '29 days' + interval '30 minutes', $2::timestamptz - interval '29 days')`, acct, now)
	exec(`INSERT INTO rate_limits (key, window_start, count) VALUES ('ended', $1::timestamptz - interval '25 hours', 3), ('counting', $1::timestamptz - interval '23 hours', 3)`, now)
	exec(`INSERT INTO stripe_events (id, type, object_id, payload, received_at) VALUES
		('evt_31d', 'checkout.session.completed', 'cs_1', '{}', $1::timestamptz - interval '31 days'),
		('evt_29d', 'checkout.session.completed', 'cs_2', '{}', $1::timestamptz - interval '29 days')`, now)

	startClient(t, b, PeriodicJobs(time.Hour, time.Hour), nil)
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'retention' AND state = 'completed'`) == 1
	}, 30*time.Second, 50*time.Millisecond, "retention runs when the worker starts")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM sessions`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tokens WHERE hash = 'used-29d'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM tokens`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rate_limits WHERE key = 'counting'`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM rate_limits`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM stripe_events`))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stripe_events WHERE payload IS NULL AND id = 'evt_31d'`))
}

// A run stops after RetentionMaxBatches statements of a category; the rest waits for the next
// run.
func TestRetentionRunIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	now := time.Now().UTC()
	_, err := b.pool.Exec(ctx, `INSERT INTO rate_limits (key, window_start, count)
		SELECT 'k' || i, $1::timestamptz - interval '2 days', 1 FROM generate_series(1, 25000) i`, now)
	require.NoError(t, err)
	w := &RetentionWorker{d: b.deps, maxBatches: 2}
	res := work(t, b, w, RetentionArgs{})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 5000, b.count(t, `SELECT count(*) FROM rate_limits`), "two batches of 10,000")
	work(t, b, w, RetentionArgs{})
	require.Zero(t, b.count(t, `SELECT count(*) FROM rate_limits`))
}

// outcomeTestArgs is a job about a pod that fails every attempt.
type outcomeTestArgs struct {
	PodID string `json:"pod_id"`
}

func (outcomeTestArgs) Kind() string                 { return "outcome_test" }
func (outcomeTestArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 2} }

type outcomeTestWorker struct {
	river.WorkerDefaults[outcomeTestArgs]
}

func (outcomeTestWorker) Work(context.Context, *river.Job[outcomeTestArgs]) error {
	return errors.New("the provider said no")
}

func (outcomeTestWorker) NextRetry(*river.Job[outcomeTestArgs]) time.Time { return time.Now() }

// River forgets finished jobs (worker.NewClient's retention), so each job about an order or a
// pod leaves its outcome in the audit trail the order's story reads: job.completed, or
// job.failed when it was discarded after its last attempt or cancelled. A retry is no outcome,
// and jobs about neither (stripe_event, the periodic ones) write nothing.
func TestJobOutcomesAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, quiet := b.order(t, "pro", "quiet@example.com")     // capture finds nothing to do
	_, refused := b.order(t, "pro", "refused@example.com") // capture refuses: the order was never paid
	_, err := b.pool.Exec(ctx, `UPDATE pods SET status = 'deploying' WHERE id = $1`, refused)
	require.NoError(t, err)
	_, failing := b.order(t, "pro", "failing@example.com")

	client := startClient(t, b, nil, func(w *river.Workers) { river.AddWorker(w, &outcomeTestWorker{}) })
	for _, args := range []river.JobArgs{CaptureArgs{PodID: quiet}, CaptureArgs{PodID: refused}, outcomeTestArgs{PodID: failing}, LambdaFirewallArgs{}} {
		_, err := client.Insert(ctx, args, nil)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state IN ('completed', 'cancelled', 'discarded')`) == 4
	}, 20*time.Second, 20*time.Millisecond)

	type entry struct {
		Action, Kind, State, Error string
		Attempt                    float64
	}
	outcome := func(podID string) []entry {
		t.Helper()
		var out []entry
		rows, err := b.pool.Query(ctx, `SELECT action, detail FROM audit_events WHERE pod_id = $1 AND action LIKE 'job.%' ORDER BY id`, podID)
		require.NoError(t, err)
		for rows.Next() {
			var action string
			var d map[string]any
			require.NoError(t, rows.Scan(&action, &d))
			e := entry{Action: action, Kind: d["kind"].(string), Attempt: d["attempt"].(float64)}
			e.State, _ = d["state"].(string)
			e.Error, _ = d["error"].(string)
			require.NotZero(t, d["job_id"])
			out = append(out, e)
		}
		require.NoError(t, rows.Err())
		return out
	}
	require.Equal(t, []entry{{Action: "job.completed", Kind: "capture", State: "completed", Attempt: 1}}, outcome(quiet))
	refusedOutcome := outcome(refused)
	require.Len(t, refusedOutcome, 1)
	require.Equal(t, "job.failed", refusedOutcome[0].Action)
	require.Equal(t, "cancelled", refusedOutcome[0].State)
	require.Contains(t, refusedOutcome[0].Error, "nothing to capture")
	require.Equal(t, []entry{{Action: "job.failed", Kind: "outcome_test", State: "discarded", Error: "the provider said no", Attempt: 2}}, outcome(failing),
		"the first, retried attempt is no outcome")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM audit_events WHERE action LIKE 'job.%'`), "the firewall job concerns no order")
}

// The event job of an event whose payload retention dropped (ops retrying an old job in the
// River UI) still reads the stored event: it needs only its type and object.
func TestStripeEventJobWithoutPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(context.Background(), `INSERT INTO stripe_events (id, type, object_id, payload, received_at)
		VALUES ('evt_old', 'customer.created', 'cus_1', NULL, now() - interval '40 days')`)
	require.NoError(t, err)
	res := work(t, b, &StripeEventWorker{d: b.deps}, StripeEventArgs{EventID: "evt_old"})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM stripe_events WHERE processed_at IS NOT NULL`))
}
