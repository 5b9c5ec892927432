package postgres

import (
	"context"
	"time"
)

// RefundsDue is, for each of the pods that has one, what its refunds planned in the ledger and
// not yet made by Stripe come to. Read only.
func RefundsDue(ctx context.Context, q Querier, podIDs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(podIDs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT pod_id::text, sum(amount_cents) FROM refunds
		WHERE pod_id = ANY($1::uuid[]) AND stripe_refund_id IS NULL GROUP BY pod_id`, podIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var cents int64
		if err := rows.Scan(&id, &cents); err != nil {
			return nil, err
		}
		out[id] = cents
	}
	return out, rows.Err()
}

// UnplannedRefundStops is, for each of the pods that has one, the stop time of an
// unused_hours_refund job (early stop or death) that is still to run and has not planned its
// refund yet: the refund is decided (the job's StoppedAt fixes it) but not in the ledger. Read
// only.
func UnplannedRefundStops(ctx context.Context, q Querier, podIDs []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(podIDs) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT j.args->>'pod_id', (j.args->>'stopped_at')::timestamptz FROM river_job j
		WHERE j.kind = 'unused_hours_refund' AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
		AND j.args->>'pod_id' = ANY($1::text[]) AND j.args->>'reason' IN ('early_stop', 'pod_died')
		AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.pod_id::text = j.args->>'pod_id' AND r.reason = j.args->>'reason')
		ORDER BY j.id`, podIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = at
	}
	return out, rows.Err()
}
