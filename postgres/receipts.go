package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// Receipt is one captured payment of an account's pod (the order's capture or a paid
// extension), with what its receipt says: what it bought and what was refunded of it.
type Receipt struct {
	ID      string // the ledger payment's id
	PodID   string
	OrderID string
	Kind    gpubroker.PaymentKind
	Plan    string
	GPU     string
	Region  string
	// Hours are the GPU hours this payment bought, at HourlyCents each; an order's payment
	// also paid the plan fee when AmountCents is more than that.
	Hours       int
	HourlyCents int64
	AmountCents int64
	// RefundedCents is what Stripe has refunded of this payment (a refund only planned is not
	// counted: the money is not back yet).
	RefundedCents int64
	Currency      string
	PaidAt        time.Time
	// Refused is why an extension's payment bought no hours and was refunded in full
	// (gpubroker.RefundLateExtension or gpubroker.RefundOverLimit); empty otherwise.
	Refused gpubroker.RefundReason
}

// ListAccountReceipts returns the payments of an account's pods, newest first.
func ListAccountReceipts(ctx context.Context, q Querier, accountID string) ([]Receipt, error) {
	rows, err := q.Query(ctx, `SELECT y.id, p.id, o.id, y.kind, o.plan, o.gpu, o.region, y.hours, o.hourly_cents, y.amount_cents,
		COALESCE((SELECT sum(r.amount_cents) FROM refunds r WHERE r.payment_id = y.id AND r.stripe_refund_id IS NOT NULL), 0),
		y.currency, y.captured_at,
		COALESCE((SELECT min(r.reason) FROM refunds r WHERE r.payment_id = y.id AND `+refusedExtension+`), '')
		FROM payments y JOIN orders o ON o.id = y.order_id JOIN pods p ON p.order_id = o.id
		WHERE p.account_id = $1 ORDER BY y.captured_at DESC, y.id`, accountID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Receipt])
}

// AccountPaymentIntent returns the PaymentIntent of one of an account's payments; any other
// payment is ENOTFOUND, so a caller cannot learn that another account's payment exists.
func AccountPaymentIntent(ctx context.Context, q Querier, accountID, paymentID string) (string, error) {
	if uuidOrEmpty(paymentID) == "" {
		return "", gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "payment not found")
	}
	var pi string
	err := q.QueryRow(ctx, `SELECT y.payment_intent_id FROM payments y JOIN pods p ON p.order_id = y.order_id
		WHERE y.id = $1 AND p.account_id = $2`, paymentID, accountID).Scan(&pi)
	return pi, notFound(err, "payment")
}
