package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// InsertStripeEvent stores a verified webhook event under its id. It reports false for an
// event already stored (a redelivery), which the caller acknowledges without a new job.
func InsertStripeEvent(ctx context.Context, tx pgx.Tx, e *gpubroker.WebhookEvent) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, order_id, payload)
		VALUES ($1, $2, $3, NULLIF($4, '')::uuid, $5) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Type, e.ObjectID, uuidOrEmpty(e.ClientReferenceID), e.Payload)
	return tag.RowsAffected() == 1, err
}

// GetStripeEvent returns a stored event.
func GetStripeEvent(ctx context.Context, q Querier, id string) (*gpubroker.WebhookEvent, error) {
	var e gpubroker.WebhookEvent
	var orderID *string
	err := q.QueryRow(ctx, `SELECT id, type, object_id, order_id::text, payload FROM stripe_events WHERE id = $1`, id).
		Scan(&e.ID, &e.Type, &e.ObjectID, &orderID, &e.Payload)
	if orderID != nil {
		e.ClientReferenceID = *orderID
	}
	return &e, notFound(err, "stripe event")
}

// MarkStripeEventProcessed records when an event's job finished.
func MarkStripeEventProcessed(ctx context.Context, q Querier, id string, now time.Time) error {
	_, err := q.Exec(ctx, `UPDATE stripe_events SET processed_at = $2 WHERE id = $1`, id, now)
	return err
}

// uuidOrEmpty keeps only a well-formed uuid, so a foreign client_reference_id cannot make the
// insert fail.
func uuidOrEmpty(s string) string {
	if len(s) != 36 {
		return ""
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			return ""
		}
	}
	return s
}
