package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/postgres"
)

// The other status moves: extensions, accounts and outbox emails. Each is checked against its
// transition table (extension.go, account.go, email.go) and guarded in SQL on its from-status;
// like pods and orders, nothing outside this package makes them
// (TestPodsMoveOnlyInTheBusinessLayer).

// MoveExtension settles a pending extension: paid (its hours extend the pod), over_limit (paid
// past the plan's max_hours: refunded in full) or expired (its checkout was never paid). It
// reports false, changing nothing, when the extension is no longer pending.
func MoveExtension(ctx context.Context, tx pgx.Tx, x *postgres.Extension, to gpubroker.ExtensionStatus, sessionID, piID string, at time.Time) (bool, error) {
	if !gpubroker.ExtensionPending.CanMoveTo(to) {
		return false, fmt.Errorf("extension transition %s -> %s is not in the table", gpubroker.ExtensionPending, to)
	}
	switch to {
	case gpubroker.ExtensionPaid:
		return postgres.PayExtension(ctx, tx, x.ID, sessionID, piID, at)
	case gpubroker.ExtensionOverLimit:
		return postgres.RefuseExtension(ctx, tx, x.ID, sessionID, piID, at)
	default:
		return postgres.ExpireExtension(ctx, tx, x.ID, at)
	}
}

// ActivateAccount confirms a pending account's email (pending → active) with the browser that
// followed the link (payerCookie: the checkout cookie whose provisional SSH keys are kept),
// returning the account and how many keys added by other browsers were dropped.
func ActivateAccount(ctx context.Context, tx pgx.Tx, id, payerCookie string, at time.Time) (*gpubroker.Account, int, error) {
	return postgres.ActivateAccount(ctx, tx, id, payerCookie, at)
}

// MarkEmail records the outcome of an outbox row's send: pending → sent, suppressed or failed.
func MarkEmail(ctx context.Context, q postgres.Querier, id int64, to gpubroker.EmailStatus, provider, messageID, errText string, at time.Time) error {
	return postgres.MarkEmail(ctx, q, id, to, provider, messageID, errText, at)
}
