package postgres

import (
	"context"
	"gpubroker"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// FeedbackStore records SES bounces and complaints (the feedback package's Store).
type FeedbackStore struct {
	Pool *pgxpool.Pool
}

// Apply records each recipient of a bounce or complaint once (by feedback id and address) and
// puts the recipients of complaints and permanent bounces on the suppression list, all in one
// transaction: the SQS message is deleted only after it commits, and a redelivery changes
// nothing.
func (s *FeedbackStore) Apply(ctx context.Context, f gpubroker.EmailFeedback) error {
	return Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		for _, email := range f.Recipients {
			tag, err := tx.Exec(ctx, `INSERT INTO email_feedback (feedback_id, email, kind, bounce_type, message_id)
				VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, '')) ON CONFLICT DO NOTHING`, f.ID, email, f.Kind, f.BounceType, f.MessageID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 || !f.Suppresses() {
				continue
			}
			reason := f.Kind
			if f.Kind == gpubroker.FeedbackBounce {
				reason = "permanent bounce"
			}
			if _, err := tx.Exec(ctx, `INSERT INTO suppressions (email, reason) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING`, email, reason); err != nil {
				return err
			}
			if err := Audit(ctx, tx, AuditEvent{Action: gpubroker.ActionEmailSuppressed, Detail: map[string]any{"email": email, "reason": reason, "feedback_id": f.ID}}); err != nil {
				return err
			}
		}
		return nil
	})
}
