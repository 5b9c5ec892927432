package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/mail"
	"gpubroker/postgres"
)

// SendEmailArgs sends one outbox row.
type SendEmailArgs struct {
	EmailID int64 `json:"email_id"`
}

// Kind implements river.JobArgs.
func (SendEmailArgs) Kind() string { return "send_email" }

// InsertOpts makes the send unique per row and puts it on the email queue.
func (SendEmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: unique(), Queue: QueueEmail, MaxAttempts: 12}
}

// QueueEmail names the queue emails are sent from, so a slow mail provider never delays
// payments or provisioning.
const QueueEmail = "email"

// QueueEmailTx renders an email, stores it in the outbox and enqueues its send, all in tx. The
// dedupe key (e.g. "activation:<order>") makes a retried caller store and send it once.
func QueueEmailTx(ctx context.Context, tx pgx.Tx, ins Inserter, kind, to, dedupeKey string, data mail.Data) error {
	subject, text, html, err := mail.Render(kind, data)
	if err != nil {
		return fmt.Errorf("error rendering %s email: %w", kind, err)
	}
	id, inserted, err := postgres.InsertEmail(ctx, tx, gpubroker.Message{To: to, Kind: kind, Subject: subject, Text: text, HTML: html}, dedupeKey)
	if err != nil || !inserted {
		return err
	}
	_, err = ins.InsertTx(ctx, tx, SendEmailArgs{EmailID: id}, nil)
	return err
}

// SendEmailWorker delivers an outbox row through the Sender, at most once per success: a row
// that is no longer pending is left alone.
type SendEmailWorker struct {
	river.WorkerDefaults[SendEmailArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *SendEmailWorker) Work(ctx context.Context, job *river.Job[SendEmailArgs]) error {
	d := w.d
	e, err := postgres.GetEmail(ctx, d.Pool, job.Args.EmailID)
	if err != nil {
		return err
	}
	if e.Status != "pending" {
		return nil
	}
	if reason, err := postgres.Suppressed(ctx, d.Pool, e.To); err != nil {
		return err
	} else if reason != "" {
		d.Logger.InfoContext(ctx, "email suppressed", "email_id", e.ID, "kind", e.Kind, "reason", reason)
		return postgres.MarkEmail(ctx, d.Pool, e.ID, "suppressed", "", "", "address suppressed: "+reason, d.now())
	}
	if d.Sender == nil {
		// Dev and tests: the outbox row is the delivery, readable at /dev/mail.
		return postgres.MarkEmail(ctx, d.Pool, e.ID, "sent", "outbox", fmt.Sprintf("outbox-%d", e.ID), "", d.now())
	}
	msgID, err := d.Sender.Send(ctx, e.Message)
	switch {
	case errors.Is(err, gpubroker.ErrPermanent):
		d.Logger.WarnContext(ctx, "email rejected permanently", "email_id", e.ID, "kind", e.Kind, "error", err)
		return postgres.MarkEmail(ctx, d.Pool, e.ID, "failed", "ses", "", err.Error(), d.now())
	case err != nil:
		_ = postgres.NoteEmailAttempt(ctx, d.Pool, e.ID, err.Error())
		return err
	}
	d.Logger.InfoContext(ctx, "email sent", "email_id", e.ID, "kind", e.Kind, "message_id", msgID)
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		if err := postgres.MarkEmail(ctx, tx, e.ID, "sent", "ses", msgID, "", d.now()); err != nil {
			return err
		}
		return postgres.ScrubEmailTokens(ctx, tx, e.ID)
	})
}
