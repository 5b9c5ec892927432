package lifecycle

import (
	"context"
	"fmt"
	"gpubroker"
	"gpubroker/mail"
	"gpubroker/postgres"
	"gpubroker/tasks"

	"github.com/jackc/pgx/v5"
)

// QueueEmailTx renders an email, stores it in the outbox and enqueues its send, all in tx. The
// dedupe key (e.g. "activation:<order>") makes a retried caller store and send it once. An
// address in the reserved .invalid domain is a deleted account's (gpubroker.Undeliverable): a
// job that finishes its order later (a refund, a released hold) writes to nobody.
func QueueEmailTx(ctx context.Context, tx pgx.Tx, ins Inserter, kind, to, dedupeKey string, data mail.Data) error {
	if gpubroker.Undeliverable(to) {
		return nil
	}
	subject, text, html, err := mail.Render(kind, data)
	if err != nil {
		return fmt.Errorf("error rendering %s email: %w", kind, err)
	}
	id, inserted, err := postgres.InsertEmail(ctx, tx, gpubroker.Message{To: to, Kind: kind, Subject: subject, Text: text, HTML: html}, dedupeKey)
	if err != nil || !inserted {
		return err
	}
	_, err = ins.InsertTx(ctx, tx, tasks.SendEmailArgs{EmailID: id}, nil)
	return err
}
