package postgres

import (
	"context"
	"time"
)

// Allow counts one hit against key in the current fixed window and reports whether the count is
// within limit. Counters live in Postgres so every API process shares them.
func Allow(ctx context.Context, q Querier, key string, limit int, window time.Duration, now time.Time) (bool, error) {
	start := now.Truncate(window)
	var n int
	err := q.QueryRow(ctx, `INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
		ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count`, key, start).Scan(&n)
	if err != nil {
		return false, err
	}
	return n <= limit, nil
}

// PruneRateLimits deletes windows that ended before cutoff.
func PruneRateLimits(ctx context.Context, q Querier, cutoff time.Time) error {
	_, err := q.Exec(ctx, `DELETE FROM rate_limits WHERE window_start < $1`, cutoff)
	return err
}
