package postgres

import (
	"context"
	"fmt"
	"time"
)

// RateLimitMaxWindow is the longest window Allow counts. A row does not record its window's
// length, so retention deletes windows that started more than this long ago: every one of them
// has ended, whatever its length.
const RateLimitMaxWindow = 24 * time.Hour

// Allow counts one hit against key in the current fixed window and reports whether the count is
// within limit. Counters live in Postgres so every API process shares them.
func Allow(ctx context.Context, q Querier, key string, limit int, window time.Duration, now time.Time) (bool, error) {
	if window <= 0 || window > RateLimitMaxWindow {
		return false, fmt.Errorf("postgres: rate limit window %s is not within (0, %s]", window, RateLimitMaxWindow)
	}
	start := now.Truncate(window)
	var n int
	err := q.QueryRow(ctx, `INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
		ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count`, key, start).Scan(&n)
	if err != nil {
		return false, err
	}
	return n <= limit, nil
}

// PruneRateLimits deletes at most limit windows that started before cutoff and returns how
// many it deleted; retention (the rate_limits category) calls it with now − RateLimitMaxWindow,
// so only windows that have ended go.
func PruneRateLimits(ctx context.Context, q Querier, cutoff time.Time, limit int) (int64, error) {
	tag, err := q.Exec(ctx, pruneRateLimitsSQL, cutoff, limit)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

const pruneRateLimitsSQL = `DELETE FROM rate_limits r
	USING (SELECT key, window_start FROM rate_limits WHERE window_start < $1 LIMIT $2) old
	WHERE r.key = old.key AND r.window_start = old.window_start`

func rateLimitCutoff(now time.Time) time.Time { return now.Add(-RateLimitMaxWindow) }
