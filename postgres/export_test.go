package postgres

import (
	"context"
	"time"
)

// A hook for the external tests (package postgres_test, which cannot be internal: testdb
// imports this package).

// Queued is how many events wait in w for the running statement to finish.
func (w *EventWriter) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// CountFunnelJoin is CountFunnel from the orders, accounts and pods themselves: the
// definition the pre-aggregated counts must equal (the tests' oracle).
func CountFunnelJoin(ctx context.Context, q Querier, since time.Time) (FunnelCounts, error) {
	var f FunnelCounts
	err := q.QueryRow(ctx, `SELECT `+funnelSums+` FROM (SELECT `+funnelColumns+` FROM orders o `+funnelJoins+`
		WHERE o.created_at >= $1) x`, since).
		Scan(&f.CheckoutsStarted, &f.Authorized, &f.Activated, &f.Deployed, &f.Captured, &f.Running, &f.PaidCheckouts, &f.PaidAuthorized)
	return f, err
}
