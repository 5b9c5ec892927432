package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

const accountCols = `id, email, name, status, created_at, activated_at`

func scanAccount(row pgx.Row) (*gpubroker.Account, error) {
	var a gpubroker.Account
	if err := row.Scan(&a.ID, &a.Email, &a.Name, &a.Status, &a.CreatedAt, &a.ActivatedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

// UpsertAccount returns the account of an email, creating it when there is none. The unique
// email column makes two concurrent creations end in one account. A new account records
// orderID (the order being attached, "" for none) as the order that created it: the only
// checkout whose success page may sign its buyer in (CreateCheckoutSession). An existing
// account keeps the order that created it.
func UpsertAccount(ctx context.Context, tx pgx.Tx, email, name, orderID string) (*gpubroker.Account, bool, error) {
	var created bool
	var a gpubroker.Account
	// The no-op update makes RETURNING yield the existing row; xmax = 0 only for a fresh insert.
	err := tx.QueryRow(ctx, `INSERT INTO accounts (email, name, created_by_order_id) VALUES ($1, $2, NULLIF($3, '')::uuid)
		ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
		RETURNING `+accountCols+`, (xmax = 0)`, email, name, orderID).
		Scan(&a.ID, &a.Email, &a.Name, &a.Status, &a.CreatedAt, &a.ActivatedAt, &created)
	if err != nil {
		return nil, false, err
	}
	return &a, created, nil
}

// GetAccount returns an account by id.
func GetAccount(ctx context.Context, q Querier, id string) (*gpubroker.Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, id))
	return a, notFound(err, "account")
}

// GetAccountByEmail returns an account by (normalized) email.
func GetAccountByEmail(ctx context.Context, q Querier, email string) (*gpubroker.Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE email = $1`, email))
	return a, notFound(err, "account")
}

// ActivateAccount marks a pending account active; an active one stays as it is. Activation
// ends every earlier session of the account: those were opened before anyone proved they own
// the email (anyone can pay with someone else's address), so only the prover stays signed in.
// The UPDATE waits for CreateCheckoutSession's share lock on the row, so a session opened by
// paying is either committed before the DELETE runs or never opened.
//
// Keys added while the account was pending (provisional) stay only when they belong to the
// activating browser: payerCookie is its session cookie, and the keys kept are those of the
// checkout whose cookie opened that provisional session (ssh_keys.payer_order_id: typed at that
// checkout or added through one of its sessions). The link proves the address and the session
// that the payer is the same person. Every other provisional key was added by someone else, or
// by nobody we can tell, and is deleted (droppedKeys says how many) before it can reach the
// owner's pods.
func ActivateAccount(ctx context.Context, tx pgx.Tx, id, payerCookie string, now time.Time) (acct *gpubroker.Account, droppedKeys int, err error) {
	tag, err := tx.Exec(ctx, `UPDATE accounts SET status = $3, activated_at = $2 WHERE id = $1 AND status = $4`, id, now, gpubroker.AccountActive, gpubroker.AccountPending)
	if err != nil {
		return nil, 0, err
	}
	if tag.RowsAffected() == 1 {
		if _, err := tx.Exec(ctx, `UPDATE ssh_keys k SET provisional = false FROM sessions s
			WHERE k.account_id = $1 AND k.provisional AND s.hash = $2 AND s.account_id = $1 AND s.via_checkout AND s.expires_at > $3
				AND k.payer_order_id = s.order_id`, id, HashSecret(payerCookie), now); err != nil {
			return nil, 0, err
		}
		kt, err := tx.Exec(ctx, `DELETE FROM ssh_keys WHERE account_id = $1 AND provisional`, id)
		if err != nil {
			return nil, 0, err
		}
		droppedKeys = int(kt.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1`, id); err != nil {
			return nil, 0, err
		}
	}
	acct, err = GetAccount(ctx, tx, id)
	return acct, droppedKeys, err
}
