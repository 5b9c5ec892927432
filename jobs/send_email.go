package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// SendEmailArgs is tasks.SendEmailArgs: the workers' name for it.
type SendEmailArgs = tasks.SendEmailArgs

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
	if e.Status != gpubroker.EmailPending {
		return nil
	}
	if reason, err := postgres.Suppressed(ctx, d.Pool, e.To); err != nil {
		return err
	} else if reason != "" {
		d.Logger.InfoContext(ctx, "email suppressed", "email_id", e.ID, "kind", e.Kind, "reason", reason)
		return lifecycle.MarkEmail(ctx, d.Pool, e.ID, gpubroker.EmailSuppressed, "", "", "address suppressed: "+reason, d.now())
	}
	if d.Sender == nil {
		// Dev and tests: the outbox row is the delivery, readable at /dev/mail.
		return lifecycle.MarkEmail(ctx, d.Pool, e.ID, gpubroker.EmailSent, "outbox", fmt.Sprintf("outbox-%d", e.ID), "", d.now())
	}
	msgID, err := d.Sender.Send(ctx, e.Message)
	var sb sandboxed
	switch {
	case errors.As(err, &sb) && sb.Sandbox():
		return w.sandboxed(ctx, e, err)
	case errors.Is(err, gpubroker.ErrPermanent):
		d.Logger.WarnContext(ctx, "email rejected permanently", "email_id", e.ID, "kind", e.Kind, "error", err)
		return lifecycle.MarkEmail(ctx, d.Pool, e.ID, gpubroker.EmailFailed, "ses", "", err.Error(), d.now())
	case err != nil:
		_ = postgres.NoteEmailAttempt(ctx, d.Pool, e.ID, err.Error())
		return err
	}
	d.Logger.InfoContext(ctx, "email sent", "email_id", e.ID, "kind", e.Kind, "message_id", msgID)
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		if err := lifecycle.MarkEmail(ctx, tx, e.ID, gpubroker.EmailSent, "ses", msgID, "", d.now()); err != nil {
			return err
		}
		return postgres.ScrubEmailTokens(ctx, tx, e.ID)
	})
}

// sandboxed is a Sender's error saying the recipient was refused because the account is in the
// SES sandbox, which delivers only to verified addresses (mail/ses.SandboxError).
type sandboxed interface{ Sandbox() bool }

// sandboxNote starts the error stored on an email the sandbox refused.
const sandboxNote = "SES sandbox, the recipient is not verified: "

// sandboxWindow is how long an email the SES sandbox refuses is tried again: as long as the
// link it carries works (an activation link 24 hours, a sign-in link 30 minutes), 24 hours for
// the others. Production access or a verified address then lets it through.
func sandboxWindow(kind string) time.Duration {
	if kind == gpubroker.MailLogin {
		return gpubroker.LoginTokenTTL
	}
	return gpubroker.ActivationTokenTTL
}

// sandboxBackoff is the wait after the attempts'th failed try: 1 minute, doubling, at most an
// hour (about 30 tries in 24 hours).
func sandboxBackoff(attempts int) time.Duration {
	return min(time.Minute<<min(max(attempts, 0), 6), time.Hour)
}

// sandboxed handles a refusal by the SES sandbox. It is not the message's fault, so the email
// is not dropped: the job is snoozed (River's attempts are kept for real failures) with a
// growing wait until the email's window ends, then marked failed. The first refusal of each
// email is audited (email.sandbox_rejected), which ops/alerts.yml pages on: someone has to
// request production access.
func (w *SendEmailWorker) sandboxed(ctx context.Context, e *postgres.Email, err error) error {
	d := w.d
	now := d.now()
	window := sandboxWindow(e.Kind)
	deadline := e.CreatedAt.Add(window)
	if !now.Before(deadline) {
		d.Logger.WarnContext(ctx, "email refused by the SES sandbox until its link expired: failed", "email_id", e.ID, "kind", e.Kind, "error", err)
		return lifecycle.MarkEmail(ctx, d.Pool, e.ID, gpubroker.EmailFailed, "ses", "",
			fmt.Sprintf("%sgave up after %s: %v", sandboxNote, window, err), now)
	}
	first := e.Error == nil || !strings.HasPrefix(*e.Error, sandboxNote)
	wait := min(sandboxBackoff(e.Attempts), deadline.Sub(now))
	d.Logger.WarnContext(ctx, "email refused by the SES sandbox: trying again later", "email_id", e.ID, "kind", e.Kind,
		"wait", wait, "until", deadline, "error", err)
	if err := postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		if err := postgres.NoteEmailAttempt(ctx, tx, e.ID, sandboxNote+err.Error()); err != nil {
			return err
		}
		if !first {
			return nil
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{Action: gpubroker.ActionEmailSandboxRejected, Detail: map[string]any{
			"email_id": e.ID, "kind": e.Kind, "to": e.To, "retry_until": deadline, "error": err.Error()}})
	}); err != nil {
		return err
	}
	return river.JobSnooze(wait)
}
