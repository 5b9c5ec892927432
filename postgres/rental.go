package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// RecordPayment adds a captured payment to the ledger; recording the same PaymentIntent again
// changes nothing.
func RecordPayment(ctx context.Context, q Querier, orderID string, kind gpubroker.PaymentKind, piID string, amountCents int64, hours int, currency string, capturedAt time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours, currency, captured_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_intent_id) DO NOTHING`,
		orderID, kind, piID, amountCents, hours, currency, capturedAt)
	return err
}

// PaymentIDByIntent returns the ledger id of the payment of a PaymentIntent.
func PaymentIDByIntent(ctx context.Context, q Querier, piID string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id::text FROM payments WHERE payment_intent_id = $1`, piID).Scan(&id)
	return id, notFound(err, "payment")
}

// refusedExtension holds for a refund r of an extension's payment that extended nothing and
// went back in full.
const refusedExtension = `r.reason IN ('late_extension', 'over_limit')`

// OrderPayment is a ledger payment with what the rental rule reads of it.
type OrderPayment struct {
	gpubroker.Payment
	Kind gpubroker.PaymentKind
	// Hours are the hours the payment bought the pod: none for an extension refunded in full
	// because it extended nothing (late_extension, over_limit).
	Hours int
}

// OrderPayments returns an order's payments, newest first, each with what the ledger has
// refunded or is refunding of it (a planned refund counts: it is owed).
func OrderPayments(ctx context.Context, q Querier, orderID string) ([]OrderPayment, error) {
	rows, err := q.Query(ctx, `SELECT y.id, y.order_id, y.payment_intent_id, y.amount_cents, y.captured_at, y.kind,
		CASE WHEN EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = y.id AND `+refusedExtension+`) THEN 0 ELSE y.hours END,
		COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id), 0)
		FROM payments y WHERE y.order_id = $1 ORDER BY y.captured_at DESC, y.id`, orderID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OrderPayment
	for rows.Next() {
		var p OrderPayment
		if err := rows.Scan(&p.ID, &p.OrderID, &p.PaymentIntentID, &p.AmountCents, &p.CapturedAt, &p.Kind, &p.Hours, &p.RefundedCents); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// LedgerRefund is one refund of the ledger.
type LedgerRefund struct {
	ID              int64
	PaymentID       string
	PaymentIntentID string
	AmountCents     int64
	Key             string
	StripeRefundID  *string
}

// HasRefunds reports whether refunds of the reason were planned for the pod.
func HasRefunds(ctx context.Context, q Querier, podID string, reason gpubroker.RefundReason) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refunds WHERE pod_id = $1 AND reason = $2)`, podID, reason).Scan(&ok)
	return ok, err
}

// PlanRefunds stores the shares of a refund of the pod, each under its own key
// refund-<payment>-<n> (n counts the payment's refunds). The caller holds the pod's lock. It
// refuses a share above what its payment may still refund.
func PlanRefunds(ctx context.Context, tx pgx.Tx, podID string, reason gpubroker.RefundReason, shares []gpubroker.RefundShare) error {
	for _, s := range shares {
		tag, err := tx.Exec(ctx, `INSERT INTO refunds (payment_id, pod_id, amount_cents, idempotency_key, reason)
			SELECT y.id, $2, $3::bigint, 'refund-' || y.id || '-' || (1 + (SELECT count(*) FROM refunds r WHERE r.payment_id = y.id)), $4
			FROM payments y
			WHERE y.id = $1 AND y.amount_cents - COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id), 0) >= $3::bigint`,
			s.PaymentID, podID, s.AmountCents, reason)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("refund of %d on payment %s is above what it may still refund", s.AmountCents, s.PaymentID)
		}
	}
	return nil
}

// PodRefunds returns the refunds of the reason planned for a pod, oldest first.
func PodRefunds(ctx context.Context, q Querier, podID string, reason gpubroker.RefundReason) ([]LedgerRefund, error) {
	rows, err := q.Query(ctx, `SELECT r.id, r.payment_id, y.payment_intent_id, r.amount_cents, r.idempotency_key, r.stripe_refund_id
		FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE r.pod_id = $1 AND r.reason = $2 ORDER BY r.id`, podID, reason)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LedgerRefund
	for rows.Next() {
		var r LedgerRefund
		if err := rows.Scan(&r.ID, &r.PaymentID, &r.PaymentIntentID, &r.AmountCents, &r.Key, &r.StripeRefundID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkRefundMade records Stripe's refund id on a planned refund (once).
func MarkRefundMade(ctx context.Context, q Querier, id int64, stripeRefundID string, now time.Time) error {
	_, err := q.Exec(ctx, `UPDATE refunds SET stripe_refund_id = $2, refunded_at = $3 WHERE id = $1 AND stripe_refund_id IS NULL`, id, stripeRefundID, now)
	return err
}

// RecordFullRefund records in the ledger the full refund of an order's own payment (a pod that
// could not be started), under the refund's key; recording it again changes nothing.
func RecordFullRefund(ctx context.Context, q Querier, orderID, podID, key, stripeRefundID string, now time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO refunds (payment_id, pod_id, amount_cents, idempotency_key, stripe_refund_id, reason, refunded_at)
		SELECT y.id, $2, y.amount_cents - COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id), 0), $3, NULLIF($4, ''), 'not_started', $5
		FROM payments y WHERE y.order_id = $1 AND y.kind = 'order'
		AND y.amount_cents - COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id), 0) > 0
		ON CONFLICT DO NOTHING`, orderID, podID, key, stripeRefundID, now)
	return err
}

// HasAudit reports whether the pod has an audit event of the action (a once-only notice).
func HasAudit(ctx context.Context, q Querier, podID string, action gpubroker.AuditAction) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE pod_id = $1 AND action = $2)`, podID, action).Scan(&ok)
	return ok, err
}

// Extension is hours bought on a running pod.
type Extension struct {
	ID              string
	PodID           string
	OrderID         string
	Hours           int
	AmountCents     int64
	Currency        string
	Status          gpubroker.ExtensionStatus
	StripeSessionID *string
	PaymentIntentID *string
}

const extensionCols = `id, pod_id, order_id, hours, amount_cents, currency, status, stripe_session_id, payment_intent_id`

func scanExtension(row pgx.Row) (*Extension, error) {
	var x Extension
	err := row.Scan(&x.ID, &x.PodID, &x.OrderID, &x.Hours, &x.AmountCents, &x.Currency, &x.Status, &x.StripeSessionID, &x.PaymentIntentID)
	return &x, notFound(err, "extension")
}

// CreateExtension stores a pending extension of a pod.
func CreateExtension(ctx context.Context, tx pgx.Tx, podID, orderID string, hours int, amountCents int64, currency string) (*Extension, error) {
	return scanExtension(tx.QueryRow(ctx, `INSERT INTO extensions (pod_id, order_id, hours, amount_cents, currency)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+extensionCols, podID, orderID, hours, amountCents, currency))
}

// SetExtensionSession records the Checkout Session of an extension.
func SetExtensionSession(ctx context.Context, q Querier, id, sessionID string) error {
	_, err := q.Exec(ctx, `UPDATE extensions SET stripe_session_id = $2 WHERE id = $1 AND (stripe_session_id IS NULL OR stripe_session_id = $2)`, id, sessionID)
	return err
}

// ExtensionOfSession finds the extension of a Checkout Session: by session id, else by the
// session's client_reference_id (the API may have stopped before recording the session).
func ExtensionOfSession(ctx context.Context, q Querier, sessionID, clientReferenceID string) (*Extension, error) {
	x, err := scanExtension(q.QueryRow(ctx, `SELECT `+extensionCols+` FROM extensions WHERE stripe_session_id = $1`, sessionID))
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND && uuidOrEmpty(clientReferenceID) != "" {
		x, err = scanExtension(q.QueryRow(ctx, `SELECT `+extensionCols+` FROM extensions WHERE id = $1`, clientReferenceID))
	}
	return x, err
}

// PayExtension moves a pending extension to paid with its PaymentIntent; it reports false,
// changing nothing, when the extension is not pending (a duplicate or late event).
func PayExtension(ctx context.Context, tx pgx.Tx, id, sessionID, piID string, now time.Time) (bool, error) {
	return settleExtension(ctx, tx, id, gpubroker.ExtensionPaid, sessionID, piID, now)
}

// RefuseExtension moves a pending extension whose payment arrived to over_limit: paid, but it
// extends nothing. It reports false, changing nothing, when the extension is not pending.
func RefuseExtension(ctx context.Context, tx pgx.Tx, id, sessionID, piID string, now time.Time) (bool, error) {
	return settleExtension(ctx, tx, id, gpubroker.ExtensionOverLimit, sessionID, piID, now)
}

func settleExtension(ctx context.Context, tx pgx.Tx, id string, status gpubroker.ExtensionStatus, sessionID, piID string, now time.Time) (bool, error) {
	if !gpubroker.ExtensionPending.CanMoveTo(status) {
		return false, fmt.Errorf("extension transition %s -> %s is not allowed", gpubroker.ExtensionPending, status)
	}
	tag, err := tx.Exec(ctx, `UPDATE extensions SET status = $5, paid_at = $4, payment_intent_id = $3,
		stripe_session_id = COALESCE(stripe_session_id, $2) WHERE id = $1 AND status = $6`, id, sessionID, piID, now, status, gpubroker.ExtensionPending)
	return tag.RowsAffected() == 1, err
}

// ExpireExtension moves a pending extension to expired; false when it is not pending.
func ExpireExtension(ctx context.Context, tx pgx.Tx, id string, now time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE extensions SET status = $3, expired_at = $2 WHERE id = $1 AND status = $4`, id, now, gpubroker.ExtensionExpired, gpubroker.ExtensionPending)
	return tag.RowsAffected() == 1, err
}

// PaidExtensionHours is how many hours were bought on the pod by paid extensions.
func PaidExtensionHours(ctx context.Context, q Querier, podID string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COALESCE(sum(hours), 0) FROM extensions WHERE pod_id = $1 AND status = 'paid'`, podID).Scan(&n)
	return n, err
}

// extensionOpening is how long an extension may wait for its Checkout Session before the
// request that made it counts as failed (the API stores the extension, then asks Stripe).
const extensionOpening = time.Minute

// OpenExtensionHours is how many hours of the pod are in extension checkouts that may still be
// paid at now: pending and younger than a Checkout Session's lifetime, with their session, or
// still being opened. A pending extension whose session the API never got (Stripe failed)
// cannot be paid through our link, so it stops counting soon.
func OpenExtensionHours(ctx context.Context, q Querier, podID string, now time.Time) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COALESCE(sum(hours), 0) FROM extensions WHERE pod_id = $1 AND status = 'checkout_pending'
		AND created_at > $2 AND (stripe_session_id IS NOT NULL OR created_at > $3)`,
		podID, now.Add(-gpubroker.CheckoutLifetime), now.Add(-extensionOpening)).Scan(&n)
	return n, err
}

// RunningInstance is a running pod's instance, for the health check.
type RunningInstance struct {
	PodID, Provider, InstanceID string
}

// RunningInstances lists the instances of every running pod.
func RunningInstances(ctx context.Context, q Querier) ([]RunningInstance, error) {
	rows, err := q.Query(ctx, `SELECT id, provider, instance_id FROM pods WHERE status = 'running' AND provider IS NOT NULL AND instance_id IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunningInstance
	for rows.Next() {
		var r RunningInstance
		if err := rows.Scan(&r.PodID, &r.Provider, &r.InstanceID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PlanFeePaidUntil is until when an account's fee for a plan is paid: PlanFeePeriod after the
// latest capture of one of its orders of that plan that charged the fee (an order priced without
// it, or refunded, renews nothing); zero when none did.
func PlanFeePaidUntil(ctx context.Context, q Querier, accountID, plan string) (time.Time, error) {
	var last *time.Time
	err := q.QueryRow(ctx, `SELECT max(captured_at) FROM orders WHERE account_id = $1 AND plan = $2 AND status = 'captured'
		AND captured_at IS NOT NULL AND amount_cents > hours * hourly_cents`, accountID, plan).Scan(&last)
	if err != nil || last == nil {
		return time.Time{}, err
	}
	return last.Add(gpubroker.PlanFeePeriod), nil
}
