package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// seedFunnelMix inserts n orders over the last 40 days in every funnel state: free and paid,
// authorized or not, an active, pending or no account, a pod deployed, captured, started or
// none, in the set-based way cmd/scale seeds (each statement fires the triggers once).
func seedFunnelMix(t *testing.T, pool *pgxpool.Pool, n int, tag string) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		WITH acc AS (
			INSERT INTO accounts (email, name, status)
			SELECT 'f'||i||'-'||$2||'@example.com', 'F', CASE WHEN i % 3 = 0 THEN 'pending' ELSE 'active' END
			FROM generate_series(1, $1) i RETURNING id, email),
		ord AS (
			INSERT INTO orders (account_id, email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, status, created_at, authorized_at)
			SELECT CASE WHEN i % 7 = 0 THEN NULL ELSE acc.id END, acc.email, 'F', 'p', 't', 'g', 'r', 1, 100, 100,
			       (ARRAY['checkout_pending','free','authorized','captured','refunded','expired'])[1 + i % 6],
			       now() - (i % 40) * interval '1 day' - (i * 37 % 86400) * interval '1 second',
			       CASE WHEN i % 5 <> 0 THEN now() END
			FROM (SELECT row_number() OVER () AS i, id, email FROM acc) acc RETURNING id, created_at)
		INSERT INTO pods (order_id, status, gpu, region, hours, template, deploy_requested_at, captured_at, started_at)
		SELECT id, 'running', 'g', 'r', 1, 't',
		       CASE WHEN k % 4 <> 0 THEN created_at + interval '1 minute' END,
		       CASE WHEN k % 4 > 1 THEN created_at + interval '2 minutes' END,
		       CASE WHEN k % 4 = 3 THEN created_at + interval '1 minute' + (k % 300) * interval '1.25 seconds' END
		FROM (SELECT row_number() OVER () AS k, id, created_at FROM ord) o WHERE k % 9 <> 0`, n, tag)
	require.NoError(t, err)
}

// funnelWindows are the windows compared: all time, whole days, and partial first days.
func funnelWindows() []time.Time {
	now := time.Now()
	day := now.UTC().Truncate(24 * time.Hour)
	return []time.Time{{}, now.Add(-24 * time.Hour), now.Add(-7 * 24 * time.Hour), now.Add(-30 * 24 * time.Hour),
		day, day.Add(-3 * 24 * time.Hour), day.Add(-3*24*time.Hour + 5*time.Hour), now.Add(time.Minute), now.Add(-100 * 24 * time.Hour)}
}

func requireFunnelMatches(t *testing.T, pool *pgxpool.Pool, when string) {
	t.Helper()
	ctx := context.Background()
	for _, since := range funnelWindows() {
		want, err := postgres.CountFunnelJoin(ctx, pool, since)
		require.NoError(t, err)
		got, err := postgres.CountFunnel(ctx, pool, since)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s, since %v", when, since)
	}
}

// The pre-aggregated funnel equals the join over orders, accounts and pods, in every window,
// after the backfill's kind of seeding, after changes to every table it reads (before and after
// a fold), and without a fold (a Querier that cannot begin: read only).
func TestCountFunnelEqualsJoin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	seedFunnelMix(t, pool, 3000, "a")
	requireFunnelMatches(t, pool, "seeded")

	// Changes on every table: pods deploy, capture and start; orders authorize, change status
	// and account; accounts activate; pods and orders go away.
	for _, sql := range []string{
		`UPDATE pods SET deploy_requested_at = now() WHERE deploy_requested_at IS NULL AND id IN (SELECT id FROM pods ORDER BY id LIMIT 50)`,
		`UPDATE pods SET captured_at = now(), started_at = now() WHERE captured_at IS NULL AND id IN (SELECT id FROM pods ORDER BY id DESC LIMIT 50)`,
		`UPDATE orders SET authorized_at = now() WHERE authorized_at IS NULL AND id IN (SELECT id FROM orders ORDER BY id LIMIT 40)`,
		`UPDATE orders SET status = 'free' WHERE id IN (SELECT id FROM orders WHERE status = 'expired' ORDER BY id LIMIT 30)`,
		`UPDATE accounts SET status = 'active' WHERE status = 'pending' AND id IN (SELECT id FROM accounts ORDER BY id LIMIT 60)`,
		`UPDATE accounts SET name = 'renamed'`, // nothing the funnel reads
		`DELETE FROM pods WHERE id IN (SELECT id FROM pods ORDER BY id LIMIT 20)`,
		`UPDATE orders SET account_id = NULL WHERE id IN (SELECT id FROM orders WHERE account_id IS NOT NULL ORDER BY id DESC LIMIT 25)`,
		`UPDATE orders SET created_at = created_at - interval '3 days' WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 10)`,
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
		// Read without folding first: the dirty days are counted from the orders.
		for _, since := range funnelWindows() {
			want, err := postgres.CountFunnelJoin(ctx, pool, since)
			require.NoError(t, err)
			conn, err := pool.Acquire(ctx)
			require.NoError(t, err)
			got, err := postgres.CountFunnel(ctx, readOnly{conn}, since)
			conn.Release()
			require.NoError(t, err)
			require.Equal(t, want, got, "unfolded after %s, since %v", sql, since)
		}
		requireFunnelMatches(t, pool, "folded after "+sql)
	}
	var dirty int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM funnel_dirty`).Scan(&dirty))
	require.Zero(t, dirty, "the collector folded every dirty day")
}

// readOnly hides Begin: CountFunnel then reads without folding.
type readOnly struct{ postgres.Querier }

// Writers of the funnel's tables only append marker rows: two transactions touching orders
// and pods of the same day, both open at once, never wait for each other; the counts are
// exact after both commit, wherever the folds fell.
func TestFunnelWritersDoNotBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	seedFunnelMix(t, pool, 200, "a")
	requireFunnelMatches(t, pool, "seeded")

	const writers = 8
	var wg sync.WaitGroup
	hold := make(chan struct{})
	reached := make(chan struct{}, writers)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				tx, err := pool.Begin(wctx)
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback(ctx) }()
				// A new order today, and a started pod of an existing one of today (its own).
				if _, err := tx.Exec(wctx, `WITH o AS (INSERT INTO orders (email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, status, authorized_at)
					VALUES ($1, 'W', 'p', 't', 'g', 'r', 1, 100, 100, 'authorized', now()) RETURNING id)
					INSERT INTO pods (order_id, status, gpu, region, hours, template, deploy_requested_at) SELECT id, 'deploying', 'g', 'r', 1, 't', now() FROM o`,
					fmt.Sprintf("w%d@example.com", w)); err != nil {
					return err
				}
				// A seeded pod of its own (offset w among the seeded ones only: counted among all,
				// this writer's new pod, random in id order, shifted the offsets and two writers
				// took one row, which blocked one for real about one run in seven).
				if _, err := tx.Exec(wctx, `UPDATE pods SET captured_at = now(), started_at = now() + interval '1 minute'
					WHERE id = (SELECT p.id FROM pods p JOIN orders o ON o.id = p.order_id WHERE o.email LIKE 'f%' ORDER BY p.id OFFSET $1 LIMIT 1)`, w); err != nil {
					return err
				}
				reached <- struct{}{}
				<-hold // every writer holds its transaction open here
				return tx.Commit(wctx)
			}()
		}()
	}
	// Every writer reached the hold within the time, all of them in open transactions: none
	// waited on another's row.
	timeout := time.After(10 * time.Second)
	for i := range writers {
		select {
		case <-reached:
		case err := <-errs:
			close(hold)
			require.NoError(t, err)
			require.Fail(t, "a writer ended early")
		case <-timeout:
			close(hold)
			require.Fail(t, "writers blocked", "%d of %d reached the hold", i, writers)
		}
	}
	requireFunnelMatches(t, pool, "writers open") // the collector folds while every writer is open
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireFunnelMatches(t, pool, "writers committed")
}

// The all-time provisioning percentiles come from the whole-second histogram, within half a
// second of percentile_cont over the pods; the count is exact, and follows pods as they start.
func TestProvisioningHistogram(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	check := func(when string) {
		t.Helper()
		want, err := postgres.GetProvisioningTimes(ctx, pool, time.Unix(0, 0)) // a window: exact
		require.NoError(t, err)
		got, err := postgres.GetProvisioningTimes(ctx, pool, time.Time{})
		require.NoError(t, err)
		require.Equal(t, want.Pods, got.Pods, when)
		if want.P50 == nil {
			require.Nil(t, got.P50, when)
			require.Nil(t, got.P95, when)
			return
		}
		require.InDelta(t, *want.P50, *got.P50, 0.5, when)
		require.InDelta(t, *want.P95, *got.P95, 0.5, when)
	}
	check("empty")
	seedFunnelMix(t, pool, 2000, "a")
	check("seeded")
	_, err := pool.Exec(ctx, `UPDATE pods SET started_at = deploy_requested_at + interval '17.3 seconds' WHERE started_at IS NULL AND deploy_requested_at IS NOT NULL AND id IN (SELECT id FROM pods ORDER BY id LIMIT 100)`)
	require.NoError(t, err)
	check("more started")
	_, err = pool.Exec(ctx, `DELETE FROM pods WHERE started_at IS NOT NULL AND id IN (SELECT id FROM pods ORDER BY id DESC LIMIT 100)`)
	require.NoError(t, err)
	check("some deleted")
}

// The console's provisioning time per day comes from the per-day histogram, within half a
// second of percentile_cont over each day's pods, with the window's first day cut at its start;
// the counts are exact, and follow pods as they start, change and go.
func TestProvisioningByDayFromHistogram(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	exact := func(since time.Time) []postgres.ProvisioningDay {
		rows, err := pool.Query(ctx, `SELECT date_trunc('day', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
			COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)), 0),
			COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)), 0)
			FROM pods WHERE started_at >= $1 GROUP BY 1 ORDER BY 1`, since)
		require.NoError(t, err)
		days, err := pgx.CollectRows(rows, pgx.RowToStructByPos[postgres.ProvisioningDay])
		require.NoError(t, err)
		return days
	}
	check := func(when string) {
		t.Helper()
		for _, since := range funnelWindows()[1:] {
			want := exact(since)
			got, err := postgres.ProvisioningByDay(ctx, pool, since)
			require.NoError(t, err)
			require.Len(t, got, len(want), "%s, since %s", when, since)
			for i := range want {
				require.True(t, want[i].Day.Equal(got[i].Day), "%s, since %s: day %s, got %s", when, since, want[i].Day, got[i].Day)
				require.Equal(t, want[i].Pods, got[i].Pods, "%s, since %s, %s", when, since, want[i].Day)
				require.InDelta(t, want[i].P50, got[i].P50, 0.5, "%s, since %s, %s", when, since, want[i].Day)
				require.InDelta(t, want[i].P95, got[i].P95, 0.5, "%s, since %s, %s", when, since, want[i].Day)
			}
		}
	}
	check("empty")
	seedFunnelMix(t, pool, 3000, "a")
	check("seeded")
	_, err := pool.Exec(ctx, `UPDATE pods SET started_at = deploy_requested_at + interval '17.3 seconds' WHERE started_at IS NULL AND deploy_requested_at IS NOT NULL AND id IN (SELECT id FROM pods ORDER BY id LIMIT 100)`)
	require.NoError(t, err)
	check("more started")
	_, err = pool.Exec(ctx, `UPDATE pods SET started_at = started_at - interval '2 days' WHERE started_at IS NOT NULL AND id IN (SELECT id FROM pods ORDER BY id DESC LIMIT 50)`)
	require.NoError(t, err)
	check("some moved two days back")
	_, err = pool.Exec(ctx, `DELETE FROM pods WHERE started_at IS NOT NULL AND id IN (SELECT id FROM pods ORDER BY id DESC LIMIT 100)`)
	require.NoError(t, err)
	check("some deleted")
}

// The counts' delta rows are folded into one row per key as they are summed, and the sums stay
// exact across the fold (a key whose rows sum to zero goes).
func TestSumCountsFoldsToOneRowPerKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	exec := func(sql string) {
		t.Helper()
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	for range 5 {
		exec(`INSERT INTO audit_events (action) VALUES ('fold.a')`)
	}
	for range 3 {
		exec(`INSERT INTO audit_events (action) VALUES ('fold.b'), ('fold.c')`)
	}
	exec(`DELETE FROM audit_events WHERE action = 'fold.c'`)
	exec(`DELETE FROM audit_events WHERE id = (SELECT min(id) FROM audit_events WHERE action = 'fold.b')`)
	rowsOf := func() (n int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ops_counts WHERE metric = 'audit' AND key LIKE 'fold.%'`).Scan(&n))
		return n
	}
	require.Equal(t, 5+3+3+1+1, rowsOf(), "one delta row per statement and key")
	for range 2 {
		sums, err := postgres.SumCounts(ctx, pool, "audit")
		require.NoError(t, err)
		require.Equal(t, int64(5), sums["fold.a"])
		require.Equal(t, int64(2), sums["fold.b"])
		require.NotContains(t, sums, "fold.c")
		require.Equal(t, 2, rowsOf(), "folded: one row per key, none for a key summing to zero")
	}
}
