package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// Email is an outbox row.
type Email struct {
	gpubroker.Message
	DedupeKey         *string
	Status            gpubroker.EmailStatus
	Provider          *string
	ProviderMessageID *string
	Error             *string
	Attempts          int
	CreatedAt         time.Time
	SentAt            *time.Time
}

// InsertEmail stores a rendered email in the outbox. With a dedupe key, a second insert for the
// same key stores nothing and reports false, so "send the activation email for this order"
// happens once however often the job runs.
func InsertEmail(ctx context.Context, tx pgx.Tx, m gpubroker.Message, dedupeKey string) (int64, bool, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO emails (to_email, kind, subject, text_body, html_body, dedupe_key)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`,
		m.To, m.Kind, m.Subject, m.Text, m.HTML, dedupeKey).Scan(&id)
	if err == pgx.ErrNoRows {
		return 0, false, nil
	}
	return id, err == nil, err
}

const emailCols = `id, to_email, kind, subject, text_body, html_body, dedupe_key, status, provider, provider_message_id, error, attempts, created_at, sent_at`

func scanEmail(row pgx.Row) (*Email, error) {
	var e Email
	err := row.Scan(&e.ID, &e.To, &e.Kind, &e.Subject, &e.Text, &e.HTML, &e.DedupeKey, &e.Status, &e.Provider,
		&e.ProviderMessageID, &e.Error, &e.Attempts, &e.CreatedAt, &e.SentAt)
	return &e, err
}

// GetEmail returns an outbox row.
func GetEmail(ctx context.Context, q Querier, id int64) (*Email, error) {
	e, err := scanEmail(q.QueryRow(ctx, `SELECT `+emailCols+` FROM emails WHERE id = $1`, id))
	return e, notFound(err, "email")
}

// ListEmails returns the newest outbox rows, optionally for one recipient.
func ListEmails(ctx context.Context, q Querier, to string, limit int) ([]*Email, error) {
	rows, err := q.Query(ctx, `SELECT `+emailCols+` FROM emails WHERE ($1 = '' OR to_email = $1) ORDER BY id DESC LIMIT $2`, to, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Email
	for rows.Next() {
		e, err := scanEmail(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkEmail records the outcome of a send attempt.
func MarkEmail(ctx context.Context, q Querier, id int64, status gpubroker.EmailStatus, provider, messageID, errText string, now time.Time) error {
	if !gpubroker.EmailPending.CanMoveTo(status) {
		return fmt.Errorf("email transition %s -> %s is not allowed", gpubroker.EmailPending, status)
	}
	_, err := q.Exec(ctx, `UPDATE emails SET status = $2, provider = NULLIF($3, ''), provider_message_id = NULLIF($4, ''),
		error = NULLIF($5, ''), attempts = attempts + 1, sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END
		WHERE id = $1 AND status = 'pending'`, id, status, provider, messageID, errText, now)
	return err
}

// ScrubEmailTokens replaces the one-time tokens in a delivered email's stored bodies: once the
// message has left, the outbox keeps the record of it but no working sign-in or activation link
// (tokens themselves are stored only as hashes).
func ScrubEmailTokens(ctx context.Context, q Querier, id int64) error {
	_, err := q.Exec(ctx, `UPDATE emails SET text_body = regexp_replace(text_body, 'token=[A-Za-z0-9_-]+', 'token=REDACTED', 'g'),
		html_body = regexp_replace(html_body, 'token=[A-Za-z0-9_-]+', 'token=REDACTED', 'g') WHERE id = $1`, id)
	return err
}

// NoteEmailAttempt records a failed attempt that will be retried.
func NoteEmailAttempt(ctx context.Context, q Querier, id int64, errText string) error {
	_, err := q.Exec(ctx, `UPDATE emails SET attempts = attempts + 1, error = $2 WHERE id = $1`, id, errText)
	return err
}

// Suppressed reports why an address must not be mailed, or "" when it may be.
func Suppressed(ctx context.Context, q Querier, email string) (string, error) {
	var reason string
	err := q.QueryRow(ctx, `SELECT reason FROM suppressions WHERE email = $1`, gpubroker.NormalizeEmail(email)).Scan(&reason)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	return reason, err
}
