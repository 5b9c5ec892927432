package postgres

import (
	"context"
	"time"
)

// Retention: what the hourly retention job (jobs.RetentionWorker) removes, one category at a
// time, each by one statement that touches at most a batch of rows, so no run holds many
// locks or writes one huge transaction. Audit events, the ledger (payments, refunds), orders,
// pods, accounts and the email outbox are kept.
const (
	// RetentionBatch is the most rows one retention statement deletes or updates.
	RetentionBatch = 10_000
	// TokenRetention is how long a one-time link's row stays after it was used or expired, so
	// following it again still answers 410 token_used or token_expired (then token_invalid).
	TokenRetention = 30 * 24 * time.Hour
	// StripePayloadRetention is how long a webhook event's body is kept. The event's row (its
	// id, type, object, order and times) stays for good: it is what makes a redelivery a
	// duplicate (InsertStripeEvents' ON CONFLICT (id) DO NOTHING).
	StripePayloadRetention = 30 * 24 * time.Hour
	// StripePayloadBatch is the most payloads one statement empties: each one's TOAST goes with
	// it and every index of the table gets the row again, so 10,000 took 306 ms at make scale's
	// SCALE=1 and 2,000 took 595 ms at SCALE=10 (15M events); 500 stay under 100 ms.
	StripePayloadBatch = 500
)

// RetentionCategory is one kind of row retention removes and the statement that removes one
// batch of them: SQL takes the cutoff ($1) and the batch size ($2).
type RetentionCategory struct {
	Name   string
	SQL    string
	Cutoff func(now time.Time) time.Time
	// Step, when set, is the most rows one statement touches: PruneBatch then runs SQL as
	// often as it takes to reach its limit, each statement on its own.
	Step int
}

// Retention lists the categories, each served by an index of migrations/015_retention.sql.
var Retention = []RetentionCategory{
	// A session is over at expires_at (SessionAccount wants expires_at > now).
	{Name: "sessions", Cutoff: func(now time.Time) time.Time { return now },
		SQL: `DELETE FROM sessions WHERE hash IN (SELECT hash FROM sessions WHERE expires_at <= $1 LIMIT $2)`},
	{Name: "rate_limits", Cutoff: rateLimitCutoff, SQL: pruneRateLimitsSQL},
	// A token is spent at the earlier of its use and its expiry (LEAST ignores a NULL used_at).
	{Name: "tokens", Cutoff: func(now time.Time) time.Time { return now.Add(-TokenRetention) },
		SQL: `DELETE FROM tokens WHERE hash IN (SELECT hash FROM tokens WHERE LEAST(used_at, expires_at) < $1 LIMIT $2)`},
	{Name: "stripe_payloads", Cutoff: func(now time.Time) time.Time { return now.Add(-StripePayloadRetention) }, Step: StripePayloadBatch,
		SQL: `UPDATE stripe_events SET payload = NULL
			WHERE id IN (SELECT id FROM stripe_events WHERE received_at < $1 AND payload IS NOT NULL LIMIT $2)`},
}

// PruneBatch removes at most limit rows of the category, by one statement (or, with Step, by
// statements of at most Step rows each, stopping at the first that comes back short), and
// returns how many it removed: fewer than limit means none is left.
func (c RetentionCategory) PruneBatch(ctx context.Context, q Querier, now time.Time, limit int) (int64, error) {
	step := limit
	if c.Step > 0 && c.Step < step {
		step = c.Step
	}
	cutoff := c.Cutoff(now)
	var removed int64
	for removed < int64(limit) {
		n := min(int64(step), int64(limit)-removed)
		tag, err := q.Exec(ctx, c.SQL, cutoff, n)
		if err != nil {
			return removed, err
		}
		removed += tag.RowsAffected()
		if tag.RowsAffected() < n {
			break
		}
	}
	return removed, nil
}
