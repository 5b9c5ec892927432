package postgres

import (
	"context"
	"time"
)

// CountPageView adds one view of a site path on at's UTC day (migration 022). One upsert on
// the (day, path) counter: the day's "/" row is hot, every view of the landing page waits
// on its row lock for the length of one single-statement transaction
// (BenchmarkPageViewHotRow).
func CountPageView(ctx context.Context, q Querier, path string, at time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO page_views (day, path, n) VALUES (($2::timestamptz AT TIME ZONE 'UTC')::date, $1, 1)
		ON CONFLICT (day, path) DO UPDATE SET n = page_views.n + 1`, path, at)
	return err
}

// CountVisitors is the funnel's first step: the views of the landing page ("/") on the UTC
// days from since's (the zero time: all). Views are counted by whole days, so a window's
// visitors include its first day's views from before since.
func CountVisitors(ctx context.Context, q Querier, since time.Time) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT COALESCE(sum(n), 0)::bigint FROM page_views
		WHERE path = '/' AND day >= ($1::timestamptz AT TIME ZONE 'UTC')::date`, since).Scan(&n)
	return n, err
}
