package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

const orderCols = `id, account_id, email, name, plan, template, gpu, region, hours, amount_cents, currency,
	status, stripe_session_id, payment_intent_id, authorized_at, hold_expires_at, captured_at, created_at`

func scanOrder(row pgx.Row) (*gpubroker.Order, error) {
	var o gpubroker.Order
	err := row.Scan(&o.ID, &o.AccountID, &o.Email, &o.Name, &o.Plan, &o.Template, &o.GPU, &o.Region, &o.Hours,
		&o.AmountCents, &o.Currency, &o.Status, &o.StripeSessionID, &o.PaymentIntentID, &o.AuthorizedAt,
		&o.HoldExpiresAt, &o.CapturedAt, &o.CreatedAt)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// CreateOrder stores a priced order and its configured pod. Free-trial orders claim the one
// trial of the email's mailbox (gpubroker.Mailbox) in the same transaction: a second claim is
// ECONFLICT trial_used.
func CreateOrder(ctx context.Context, tx pgx.Tx, q *gpubroker.Quote) (*gpubroker.Order, string, error) {
	status := gpubroker.OrderCheckoutPending
	if !q.Plan.PaymentRequired {
		status = gpubroker.OrderFree
	}
	r := q.Request
	o, err := scanOrder(tx.QueryRow(ctx, `INSERT INTO orders (email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, currency, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING `+orderCols,
		r.Email, r.Name, r.Plan, r.Template, r.GPU, r.Region, r.Hours, q.HourlyCents, q.AmountCents, gpubroker.Currency, status))
	if err != nil {
		return nil, "", err
	}
	if status == gpubroker.OrderFree {
		if _, err := tx.Exec(ctx, `INSERT INTO trial_claims (mailbox, email, order_id) VALUES ($1, $2, $3)`, gpubroker.Mailbox(r.Email), r.Email, o.ID); err != nil {
			if isUniqueViolation(err) {
				return nil, "", errTrialUsed()
			}
			return nil, "", err
		}
	}
	var podID string
	err = tx.QueryRow(ctx, `INSERT INTO pods (order_id, gpu, region, hours, template) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		o.ID, r.GPU, r.Region, r.Hours, r.Template).Scan(&podID)
	if err != nil {
		return nil, "", err
	}
	if err := Audit(ctx, tx, AuditEvent{OrderID: o.ID, PodID: podID, Action: gpubroker.ActionOrderCreated, Detail: map[string]any{"plan": r.Plan, "amount_cents": q.AmountCents, "status": status}}); err != nil {
		return nil, "", err
	}
	return o, podID, nil
}

func errTrialUsed() error {
	return gpubroker.Errorf(gpubroker.ECONFLICT, "trial_used", "This email address has already used its free trial.")
}

// CheckTrial returns ECONFLICT trial_used when the mailbox of email (gpubroker.Mailbox) has
// already claimed its free trial, nil when it may still claim one.
func CheckTrial(ctx context.Context, q Querier, email string) error {
	var used bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM trial_claims WHERE mailbox = $1)`, gpubroker.Mailbox(email)).Scan(&used); err != nil {
		return err
	}
	if used {
		return errTrialUsed()
	}
	return nil
}

// SetCheckoutSession records the Stripe Checkout Session created for an order.
func SetCheckoutSession(ctx context.Context, q Querier, orderID, sessionID string) error {
	_, err := q.Exec(ctx, `UPDATE orders SET stripe_session_id = $2 WHERE id = $1 AND (stripe_session_id IS NULL OR stripe_session_id = $2)`, orderID, sessionID)
	return err
}

// GetOrder returns an order by id.
func GetOrder(ctx context.Context, q Querier, id string) (*gpubroker.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE id = $1`, id))
	return o, notFound(err, "order")
}

// GetOrderForUpdate returns an order by id and locks its row until the transaction ends.
func GetOrderForUpdate(ctx context.Context, tx pgx.Tx, id string) (*gpubroker.Order, error) {
	o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE id = $1 FOR UPDATE`, id))
	return o, notFound(err, "order")
}

// GetOrderBySession returns the order of a Checkout Session.
func GetOrderBySession(ctx context.Context, q Querier, sessionID string) (*gpubroker.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE stripe_session_id = $1`, sessionID))
	return o, notFound(err, "order")
}

// GetOrderByPaymentIntent returns the order of a PaymentIntent.
func GetOrderByPaymentIntent(ctx context.Context, q Querier, piID string) (*gpubroker.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderCols+` FROM orders WHERE payment_intent_id = $1`, piID))
	return o, notFound(err, "order")
}

// AuthorizeOrder moves a pending order to authorized with its PaymentIntent (and its Checkout
// Session, in case the API stopped before recording it). holdDeadline is when the hold lapses
// (gpubroker.HoldDeadline), stored as hold_expires_at, which the dashboard shows and the hold
// release is scheduled from. It reports false, changing nothing, when the order is not
// checkout_pending (a duplicate or late event).
func AuthorizeOrder(ctx context.Context, tx pgx.Tx, orderID, sessionID, piID string, now, holdDeadline time.Time) (bool, error) {
	return moveOrder(ctx, tx, orderID, gpubroker.OrderCheckoutPending, gpubroker.OrderAuthorized, now,
		`, payment_intent_id = $5, hold_expires_at = $6, stripe_session_id = COALESCE(stripe_session_id, NULLIF($7, ''))`,
		piID, holdDeadline, sessionID)
}

// MoveOrder moves an order from one status to another, setting the status's timestamp. It
// reports false, changing nothing, when the order is not in status from.
func MoveOrder(ctx context.Context, tx pgx.Tx, orderID string, from, to gpubroker.OrderStatus, now time.Time) (bool, error) {
	return moveOrder(ctx, tx, orderID, from, to, now, "")
}

// orderTimestamp is the column each status records its time in.
var orderTimestamp = map[gpubroker.OrderStatus]string{
	gpubroker.OrderAuthorized: "authorized_at", gpubroker.OrderCaptured: "captured_at", gpubroker.OrderReleased: "released_at",
	gpubroker.OrderRefunded: "refunded_at", gpubroker.OrderExpired: "expired_at",
}

// moveOrder is every order move: checked against the transition table, guarded on from, with
// the status's timestamp and extra assignments (arguments from $5 on).
func moveOrder(ctx context.Context, tx pgx.Tx, orderID string, from, to gpubroker.OrderStatus, now time.Time, extra string, args ...any) (bool, error) {
	if !from.CanMoveTo(to) {
		return false, fmt.Errorf("order transition %s -> %s is not allowed", from, to)
	}
	col, ok := orderTimestamp[to]
	if !ok {
		return false, fmt.Errorf("order status %s has no timestamp column", to)
	}
	tag, err := tx.Exec(ctx, `UPDATE orders SET status = $3, `+col+` = $4`+extra+` WHERE id = $1 AND status = $2`,
		append([]any{orderID, from, to, now}, args...)...)
	if err != nil || tag.RowsAffected() != 1 {
		return false, err
	}
	if settles[to] {
		if _, err := tx.Exec(ctx, `UPDATE pods SET settled_at = $2 WHERE order_id = $1 AND started_at IS NULL AND settled_at IS NULL`, orderID, now); err != nil {
			return false, err
		}
	}
	return true, nil
}

// settles are the order statuses no move leaves other than captured: an order that reaches
// one settles its pod if the pod never started (pods.settled_at, migration 019), which can
// then never be a stranded pod (StrandedPods) and leaves pods_stranded_idx.
var settles = map[gpubroker.OrderStatus]bool{gpubroker.OrderRefunded: true, gpubroker.OrderReleased: true, gpubroker.OrderExpired: true}

// SetRefund records the refund of an order.
func SetRefund(ctx context.Context, tx pgx.Tx, orderID, refundID string) error {
	_, err := tx.Exec(ctx, `UPDATE orders SET refund_id = $2 WHERE id = $1`, orderID, refundID)
	return err
}

// AttachOrder links an order and its pod to an account.
func AttachOrder(ctx context.Context, tx pgx.Tx, orderID, accountID string) error {
	if _, err := tx.Exec(ctx, `UPDATE orders SET account_id = $2 WHERE id = $1`, orderID, accountID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE pods SET account_id = $2 WHERE order_id = $1`, orderID, accountID)
	return err
}
