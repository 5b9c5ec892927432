package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/jobs"
	"gpubroker/postgres"
)

const day = 24 * time.Hour

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func account(t *testing.T, pool *pgxpool.Pool, email string) string {
	t.Helper()
	ctx := context.Background()
	var id string
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		a, _, err := postgres.UpsertAccount(ctx, tx, email, "Ada", "")
		id = a.ID
		return err
	}))
	return id
}

func category(t *testing.T, name string) postgres.RetentionCategory {
	t.Helper()
	for _, c := range postgres.Retention {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no retention category %q", name)
	return postgres.RetentionCategory{}
}

// Issue 24.4: each category's statement removes what is past its retention and nothing on the
// near side of the boundary: expired sessions; rate-limit windows that have ended whatever
// their length; tokens 30 days after they were used or expired; Stripe event payloads after
// 30 days, the event row itself staying.
func TestRetentionBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now().UTC().Truncate(time.Second)
	acct := account(t, pool, "ret@example.com")
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	session := func(name string, expires time.Time) {
		exec(`INSERT INTO sessions (hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`, []byte(name), acct, expires.Add(-gpubroker.SessionTTL), expires)
	}
	session("expired", now.Add(-time.Second))
	session("expires-now", now)
	session("live", now.Add(time.Second))
	token := func(name string, expires time.Time, used *time.Time) {
		exec(`INSERT INTO tokens (hash, account_id, purpose, created_at, expires_at, used_at) VALUES ($1, $2, 'login', $3, $4, $5)`,
			[]byte(name), acct, expires.Add(-time.Hour), expires, used)
	}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	token("used-31d", now.Add(-30*day-time.Hour+30*time.Minute), at(-30*day-time.Hour))
	token("used-29d", now.Add(-29*day+30*time.Minute), at(-29*day))
	token("used-29d-long-expired", now.Add(-31*day), at(-29*day)) // cannot happen, but the earlier of the two counts
	token("expired-31d", now.Add(-30*day-time.Hour), nil)
	token("expired-29d", now.Add(-29*day), nil)
	token("live", now.Add(time.Hour), nil)
	window := func(key string, start time.Time) {
		exec(`INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)`, key, start)
	}
	window("day-ended", now.Add(-day-time.Second))
	window("day-running", now.Add(-day+time.Minute)) // a 24-hour window still counting
	window("current", now.Truncate(10*time.Minute))
	event := func(id string, received time.Time) {
		exec(`INSERT INTO stripe_events (id, type, object_id, payload, received_at, processed_at) VALUES ($1, 'checkout.session.completed', 'cs_'||$1, '{"x":1}', $2, $2)`, id, received)
	}
	event("evt_31d", now.Add(-30*day-time.Hour))
	event("evt_29d", now.Add(-29*day))

	for _, c := range postgres.Retention {
		_, err := c.PruneBatch(ctx, pool, now, postgres.RetentionBatch)
		require.NoError(t, err, c.Name)
	}
	names := func(sql string) []string {
		rows, err := pool.Query(ctx, sql)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	require.Equal(t, []string{"live"}, names(`SELECT convert_from(hash, 'UTF8') FROM sessions ORDER BY 1`), "a session ends at expires_at")
	require.Equal(t, []string{"expired-29d", "live", "used-29d"}, names(`SELECT convert_from(hash, 'UTF8') FROM tokens ORDER BY 1`))
	require.Equal(t, []string{"current", "day-running"}, names(`SELECT key FROM rate_limits ORDER BY 1`))
	require.Equal(t, []string{"evt_29d", "evt_31d"}, names(`SELECT id FROM stripe_events ORDER BY 1`), "event rows stay for dedupe")
	require.Equal(t, []string{"evt_29d"}, names(`SELECT id FROM stripe_events WHERE payload IS NOT NULL`))
}

// One statement touches at most RetentionBatch rows: 25,000 expired sessions take three.
func TestRetentionBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now().UTC()
	acct := account(t, pool, "batch@example.com")
	_, err := pool.Exec(ctx, `INSERT INTO sessions (hash, account_id, created_at, expires_at)
		SELECT decode(md5(i::text), 'hex'), $1, $2::timestamptz - interval '31 days', $2::timestamptz - i * interval '1 second'
		FROM generate_series(1, 25000) i`, acct, now)
	require.NoError(t, err)
	_, _, err = postgres.CreateSession(ctx, pool, acct, now)
	require.NoError(t, err)
	sessions := category(t, "sessions")
	var got []int64
	for range 4 {
		n, err := sessions.PruneBatch(ctx, pool, now, postgres.RetentionBatch)
		require.NoError(t, err)
		got = append(got, n)
	}
	require.Equal(t, []int64{10000, 10000, 5000, 0}, got)
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM sessions`), "the live session stays")
}

// Each category's scan can be served by an index, so an hourly run over a big table reads
// only what it removes (with sequential scans disabled the planner still picks one when no
// index fits).
func TestRetentionScansUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now().UTC()
	for _, c := range postgres.Retention {
		require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `EXPLAIN (FORMAT TEXT) `+c.SQL, c.Cutoff(now), postgres.RetentionBatch)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			require.NotContains(t, strings.Join(lines, "\n"), "Seq Scan", c.Name)
			return nil
		}))
	}
}

// A Stripe event redelivered after its payload was dropped is still a duplicate: it stores
// nothing and enqueues nothing. The event's job still reads the stored event (River UI retry).
func TestOldStripeEventRedelivered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now().UTC()
	ev := &gpubroker.WebhookEvent{ID: "evt_old", Type: "checkout.session.completed", ObjectID: "cs_old",
		ClientReferenceID: "6f1c2a9e-3b7d-4c2a-8e5f-0123456789ab", Payload: []byte(`{"id":"evt_old"}`)}
	inserted, err := postgres.InsertStripeEvent(ctx, pool, ev, jobs.StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.True(t, inserted)
	_, err = pool.Exec(ctx, `UPDATE stripe_events SET received_at = $1, processed_at = $1`, now.Add(-31*day))
	require.NoError(t, err)
	n, err := category(t, "stripe_payloads").PruneBatch(ctx, pool, now, postgres.RetentionBatch)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM stripe_events WHERE payload IS NULL`))

	inserted, err = postgres.InsertStripeEvent(ctx, pool, ev, jobs.StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.False(t, inserted, "a redelivery of an event whose payload was dropped is a duplicate")
	batch, err := postgres.InsertStripeEvents(ctx, pool, []postgres.EventJob{{Event: ev, Job: jobs.StripeEventArgs{EventID: ev.ID}}, {Event: &gpubroker.WebhookEvent{ID: "evt_new", Type: "x", ObjectID: "cs_new", Payload: []byte(`{}`)}, Job: jobs.StripeEventArgs{EventID: "evt_new"}}})
	require.NoError(t, err)
	require.Equal(t, []bool{false, true}, batch)
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'evt_old'`))

	got, err := postgres.GetStripeEvent(ctx, pool, ev.ID)
	require.NoError(t, err)
	require.Equal(t, "cs_old", got.ObjectID)
	require.Nil(t, got.Payload)
}

// Rate-limit rows do not record their window's length, so retention keeps every window that
// may still be counting (RateLimitMaxWindow) and Allow refuses a longer window.
func TestRateLimitWindowAtMostTheRetainedOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	ok, err := postgres.Allow(ctx, pool, "k", 1, postgres.RateLimitMaxWindow, now)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = postgres.Allow(ctx, pool, "k", 1, postgres.RateLimitMaxWindow+time.Hour, now)
	require.Error(t, err)
}

// The payloads are emptied StripePayloadBatch at a time (each statement well under 100 ms at
// production size), up to PruneBatch's limit, which still means what it did to the caller.
func TestStripePayloadsInSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now().UTC()
	total := postgres.StripePayloadBatch*2 + 500
	_, err := pool.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, payload, received_at)
		SELECT 'evt_' || i, 'x', 'cs_' || i, '{}', $1::timestamptz - interval '31 days' FROM generate_series(1, $2) i`, now, total)
	require.NoError(t, err)
	payloads := category(t, "stripe_payloads")
	n, err := payloads.PruneBatch(ctx, pool, now, postgres.StripePayloadBatch+100)
	require.NoError(t, err)
	require.Equal(t, int64(postgres.StripePayloadBatch+100), n, "the limit is reached in steps")
	n, err = payloads.PruneBatch(ctx, pool, now, postgres.RetentionBatch)
	require.NoError(t, err)
	require.Equal(t, int64(total-postgres.StripePayloadBatch-100), n, "short: none left")
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM stripe_events WHERE payload IS NOT NULL`))
}
