package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// What the reconciler reads: our side of the three ledgers (orders and payments here, the
// PaymentIntents at Stripe, the instances at the providers). A job that is still working on a
// pod or order (available, running, retryable, pending) may be in the middle of changing both
// sides, so whatever such a job covers is left for the next run.

// jobAlive is the states of a job still to run or running: a job in one of them may yet
// change what the reconciler would repair.
const jobAlive = `('available', 'pending', 'running', 'retryable', 'scheduled')`

// JobAlive reports whether a job of the kind whose args contain args is still to run or
// running (River's GIN index on args serves the containment).
func JobAlive(ctx context.Context, q Querier, kind string, args map[string]any) (bool, error) {
	var alive bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = $1 AND args @> $2
		AND state IN `+jobAlive+`)`, kind, args).Scan(&alive)
	return alive, err
}

// PodInstance is a pod's record of its instance.
type PodInstance struct {
	PodID      string
	Status     gpubroker.PodStatus
	Provider   string
	InstanceID string
}

// PodsByID returns the pods among ids (others are simply absent: an id that is no uuid, or a
// pod we never had).
func PodsByID(ctx context.Context, q Querier, ids []string) (map[string]PodInstance, error) {
	var valid []string
	for _, id := range ids {
		if uuidOrEmpty(id) != "" {
			valid = append(valid, id)
		}
	}
	out := map[string]PodInstance{}
	if len(valid) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id::text, status, COALESCE(provider, ''), COALESCE(instance_id, '') FROM pods WHERE id = ANY($1::uuid[])`, valid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p PodInstance
		if err := rows.Scan(&p.PodID, &p.Status, &p.Provider, &p.InstanceID); err != nil {
			return nil, err
		}
		out[p.PodID] = p
	}
	return out, rows.Err()
}

// StrandedPod is a captured order's pod that never ran and has nothing left that would end in
// a running pod or a refund.
type StrandedPod struct {
	PodID, OrderID, AccountID string
	Status                    gpubroker.PodStatus
	// RefundDiscarded: its refund job ran out of attempts; a person must look (River UI).
	RefundDiscarded bool
}

// StrandedPods lists captured orders whose pod never ran and is failed (given up) or still
// provisioning since before stuckBefore, with no refund made or planned and no refund or
// provision job alive: a lost job, a discarded one, or a bug. Captured money must always end
// in a running pod or a refund.
//
// It reads pods_stranded_idx (migration 019): a settled pod (pods.settled_at: its order
// refunded, released or expired before it started) can never be captured money without a
// refund, so leaving it out changes nothing. The index holds a handful of pods, but the
// planner, taking its three conditions as independent, expects thousands; so each pod's order
// is looked up by its key (LATERAL … LIMIT 1, an order per pod anyway) rather than joined
// (and JIT, which such an estimate would turn on, is off for our connections: Open).
func StrandedPods(ctx context.Context, q Querier, stuckBefore time.Time) ([]StrandedPod, error) {
	rows, err := q.Query(ctx, `SELECT p.id::text, o.id::text, COALESCE(o.account_id::text, ''), p.status,
		EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'refund' AND j.args @> jsonb_build_object('pod_id', p.id::text) AND j.state = 'discarded')
		FROM pods p CROSS JOIN LATERAL (SELECT o.id, o.account_id FROM orders o WHERE o.id = p.order_id AND o.status = 'captured'
			AND NOT EXISTS (SELECT 1 FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE y.order_id = o.id) LIMIT 1) o
		WHERE p.started_at IS NULL AND p.settled_at IS NULL
		AND (p.status = 'failed' OR (p.status = 'provisioning' AND p.captured_at < $1))
		AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind IN ('refund', 'provision') AND j.args @> jsonb_build_object('pod_id', p.id::text)
			AND j.state IN `+jobAlive+`)
		ORDER BY p.captured_at`, stuckBefore)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[StrandedPod])
}

// OverduePod is a running pod past its paid end.
type OverduePod struct {
	PodID, OrderID, AccountID string
	EndsAt                    time.Time
}

// OverduePods lists running pods whose paid end passed before endedBefore, with no terminate
// job alive (a cancelled or deleted one does not count) and no extension that may still move
// the end: a checkout opened since openSince (it may still be paid), or one paid whose Stripe
// event is stored but not yet processed.
func OverduePods(ctx context.Context, q Querier, endedBefore, openSince time.Time) ([]OverduePod, error) {
	rows, err := q.Query(ctx, `SELECT p.id::text, p.order_id::text, COALESCE(o.account_id::text, ''), p.ends_at
		FROM pods p JOIN orders o ON o.id = p.order_id
		WHERE p.status = 'running' AND p.ends_at < $1
		AND NOT EXISTS (SELECT 1 FROM extensions x WHERE x.pod_id = p.id AND x.status = 'checkout_pending'
			AND (x.created_at > $2 OR EXISTS (SELECT 1 FROM stripe_events e WHERE e.object_id = x.stripe_session_id AND e.processed_at IS NULL)))
		AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'terminate' AND j.args @> jsonb_build_object('pod_id', p.id::text)
			AND j.state IN `+jobAlive+`)
		ORDER BY p.ends_at`, endedBefore, openSince)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OverduePod])
}

// UnmadeRefund is a refund planned in the ledger (early stop, dead pod, late extension) that
// was never made and that no job is making.
type UnmadeRefund struct {
	PodID, OrderID string
	Reason         gpubroker.RefundReason
	PlannedAt      time.Time
}

// UnmadeRefunds lists planned refunds planned before plannedBefore, not made, whose pod has
// no unused_hours_refund job alive (one per pod and reason).
func UnmadeRefunds(ctx context.Context, q Querier, plannedBefore time.Time) ([]UnmadeRefund, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (r.pod_id, r.reason) r.pod_id::text, y.order_id::text, r.reason, r.created_at
		FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE r.stripe_refund_id IS NULL AND r.refunded_at IS NULL AND r.pod_id IS NOT NULL AND r.created_at < $1
		AND r.reason IN ('early_stop', 'pod_died', 'late_extension', 'over_limit')
		AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'unused_hours_refund' AND j.args @> jsonb_build_object('pod_id', r.pod_id::text)
			AND j.state IN `+jobAlive+`)
		ORDER BY r.pod_id, r.reason, r.created_at`, plannedBefore)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[UnmadeRefund])
}

// LedgerPayment is one captured payment and what the ledger says has been refunded of it.
type LedgerPayment struct {
	PaymentIntentID string
	Kind            string
	AmountCents     int64
	RefundedCents   int64 // refunds made (refunded_at set)
}

// ReconcileOrder is an order due for comparison with Stripe.
type ReconcileOrder struct {
	ID, AccountID   string
	Status          gpubroker.OrderStatus
	PaymentIntentID string
	AmountCents     int64
	Drift           string // what the last check found, "" when it agreed
	Payments        []LedgerPayment
	// Swept is an order of the sweep (not a never-compared one); CreatedAt is where the next
	// sweep goes on from once it is compared (AdvanceSweep).
	Swept     bool
	CreatedAt time.Time
}

// OrdersToReconcile returns up to limit paid orders of the last 35 days not compared with
// Stripe since dueBefore: first those never compared, oldest first; then the window swept in
// creation order from where the last sweep stopped (AdvanceSweep), starting over at the
// window's beginning when it reaches the end. It leaves out orders a payments job is working
// on (a scheduled one is not working yet: every authorized order has its hold release
// scheduled days ahead, so jobAlive would leave them all out).
//
// Each part reads an index range that stops at the batch: the never-compared orders on
// orders_reconcile_idx (reconciled_at NULLS FIRST, created_at), the sweep on orders_sweep_idx
// (created_at). Least recently compared first instead (an order's last comparison as the key)
// stepped over the entry of every order that left the window in the last 35 days, whose last
// comparison stays in that range: 321 ms cold at make scale's SCALE=10.
func OrdersToReconcile(ctx context.Context, q Querier, dueBefore time.Time, limit int) ([]ReconcileOrder, error) {
	const paid = `o.payment_intent_id IS NOT NULL AND o.status IN ('authorized', 'captured', 'refunded', 'released')`
	rows, err := q.Query(ctx, `WITH window_start AS (SELECT $1::timestamptz - interval '35 days' AS at),
		sweep AS (SELECT GREATEST(cursor, (SELECT at FROM window_start)) AS at FROM reconcile_sweep),
		due AS (
		(SELECT o.id, 0 AS part, o.created_at FROM orders o
			WHERE `+paid+` AND o.reconciled_at IS NULL AND o.created_at > (SELECT at FROM window_start)
			AND NOT `+reconcileBusy+`
			ORDER BY o.reconciled_at NULLS FIRST, o.created_at LIMIT $2)
		UNION ALL
		(SELECT o.id, 1, o.created_at FROM orders o
			WHERE `+paid+` AND o.created_at > (SELECT at FROM sweep) AND o.reconciled_at < $1
			AND NOT `+reconcileBusy+`
			ORDER BY o.created_at LIMIT $2)
		UNION ALL
		(SELECT o.id, 2, o.created_at FROM orders o
			WHERE `+paid+` AND o.created_at > (SELECT at FROM window_start) AND o.created_at <= (SELECT at FROM sweep)
			AND o.reconciled_at < $1
			AND NOT `+reconcileBusy+`
			ORDER BY o.created_at LIMIT $2)
		ORDER BY part, created_at LIMIT $2)
		SELECT o.id::text, COALESCE(o.account_id::text, ''), o.status, o.payment_intent_id, o.amount_cents, COALESCE(o.drift, ''),
		COALESCE((SELECT jsonb_agg(jsonb_build_object('pi', y.payment_intent_id, 'kind', y.kind, 'amount', y.amount_cents,
			'refunded', COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id AND r.refunded_at IS NOT NULL), 0)))
			FROM payments y WHERE y.order_id = o.id), '[]'), due.part > 0, o.created_at
		FROM due JOIN orders o ON o.id = due.id
		ORDER BY due.part, due.created_at`, dueBefore, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReconcileOrder
	for rows.Next() {
		var o ReconcileOrder
		var pays []struct {
			PI       string `json:"pi"`
			Kind     string `json:"kind"`
			Amount   int64  `json:"amount"`
			Refunded int64  `json:"refunded"`
		}
		if err := rows.Scan(&o.ID, &o.AccountID, &o.Status, &o.PaymentIntentID, &o.AmountCents, &o.Drift, &pays, &o.Swept, &o.CreatedAt); err != nil {
			return nil, err
		}
		for _, p := range pays {
			o.Payments = append(o.Payments, LedgerPayment{PaymentIntentID: p.PI, Kind: p.Kind, AmountCents: p.Amount, RefundedCents: p.Refunded})
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// reconcileBusy is true of an order o whose capture, refund, release or provisioning job is
// working on it.
const reconcileBusy = `EXISTS (SELECT 1 FROM river_job j WHERE j.kind IN ('capture', 'refund', 'unused_hours_refund', 'release_hold', 'provision')
	AND j.state IN ('available', 'pending', 'running', 'retryable')
	AND (j.args @> jsonb_build_object('order_id', o.id::text)
		OR j.args @> jsonb_build_object('pod_id', (SELECT p.id::text FROM pods p WHERE p.order_id = o.id LIMIT 1))))`

// AdvanceSweep records where the reconciler's sweep of the window stopped: the creation time of
// the last order it compared.
func AdvanceSweep(ctx context.Context, q Querier, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE reconcile_sweep SET cursor = $1`, at)
	return err
}

// MarkReconciled records a comparison: when it ran and what it found ("" when Stripe agreed).
func MarkReconciled(ctx context.Context, q Querier, orderID, drift string, now time.Time) error {
	_, err := q.Exec(ctx, `UPDATE orders SET reconciled_at = $2, drift = NULLIF($3, '') WHERE id = $1`, orderID, now, drift)
	return err
}
