package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

const sshKeyCols = `id, account_id, name, type, fingerprint, public_key, created_at`

func scanSSHKey(row pgx.Row) (*gpubroker.SSHKey, error) {
	var k gpubroker.SSHKey
	if err := row.Scan(&k.ID, &k.AccountID, &k.Name, &k.Type, &k.Fingerprint, &k.PublicKey, &k.CreatedAt); err != nil {
		return nil, err
	}
	return &k, nil
}

// AddSSHKey stores a parsed key on its account. The account's row lock serializes additions,
// so concurrent adds never pass MaxSSHKeys; the same key twice is ECONFLICT duplicate_key.
// payerOrderID is the checkout whose payer adds the key ("" for none): on a pending account
// the key is provisional, and activation keeps it only for that checkout's paying browser.
func AddSSHKey(ctx context.Context, tx pgx.Tx, k gpubroker.SSHKey, payerOrderID string) (*gpubroker.SSHKey, error) {
	// Lock first, count second: under READ COMMITTED the count's statement then sees every
	// key committed by whoever held the lock before.
	var pending bool
	if err := tx.QueryRow(ctx, `SELECT status = 'pending' FROM accounts WHERE id = $1 FOR UPDATE`, k.AccountID).Scan(&pending); err != nil {
		return nil, notFound(err, "account")
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM ssh_keys WHERE account_id = $1`, k.AccountID).Scan(&n); err != nil {
		return nil, err
	}
	if n >= gpubroker.MaxSSHKeys {
		msg := fmt.Sprintf("An account holds at most %d keys: delete one first.", gpubroker.MaxSSHKeys)
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "too_many_keys", Message: msg, Fields: map[string]string{"public_key": msg}}
	}
	// A key added to a pending account is provisional until activation (ActivateAccount).
	added, err := scanSSHKey(tx.QueryRow(ctx, `INSERT INTO ssh_keys (account_id, name, type, fingerprint, public_key, provisional, payer_order_id)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN NULLIF($7, '')::uuid END) ON CONFLICT (account_id, fingerprint) DO NOTHING RETURNING `+sshKeyCols,
		k.AccountID, k.Name, k.Type, k.Fingerprint, k.PublicKey, pending, payerOrderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gpubroker.Errorf(gpubroker.ECONFLICT, "duplicate_key", "This key is already on your account (%s).", k.Fingerprint)
	}
	return added, err
}

// ListSSHKeys returns an account's keys, oldest first.
func ListSSHKeys(ctx context.Context, q Querier, accountID string) ([]gpubroker.SSHKey, error) {
	return listSSHKeys(ctx, q, `SELECT `+sshKeyCols+` FROM ssh_keys WHERE account_id = $1 ORDER BY created_at, id`, accountID)
}

// LaunchSSHKeys returns the keys that go onto the account's pods: every key but a
// provisional one (a pending account cannot deploy; this keeps it so).
func LaunchSSHKeys(ctx context.Context, q Querier, accountID string) ([]gpubroker.SSHKey, error) {
	return listSSHKeys(ctx, q, `SELECT `+sshKeyCols+` FROM ssh_keys WHERE account_id = $1 AND NOT provisional ORDER BY created_at, id`, accountID)
}

func listSSHKeys(ctx context.Context, q Querier, sql, accountID string) ([]gpubroker.SSHKey, error) {
	rows, err := q.Query(ctx, sql, accountID)
	if err != nil {
		return nil, err
	}
	keys := []gpubroker.SSHKey{}
	for rows.Next() {
		k, err := scanSSHKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, *k)
	}
	return keys, rows.Err()
}

// DeleteSSHKey deletes one of an account's keys; any other key is ENOTFOUND, so nobody can
// learn that another account's key exists.
func DeleteSSHKey(ctx context.Context, q Querier, accountID, id string) error {
	if uuidOrEmpty(id) == "" {
		return gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "No such key.")
	}
	tag, err := q.Exec(ctx, `DELETE FROM ssh_keys WHERE id = $1 AND account_id = $2`, id, accountID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "No such key.")
	}
	return nil
}

// SetOrderSSHKey records the key typed at checkout and the account the buyer was signed in to
// (empty: none), for the account job to save on the account the order lands on.
func SetOrderSSHKey(ctx context.Context, tx pgx.Tx, orderID, publicKey, buyerAccountID string) error {
	_, err := tx.Exec(ctx, `UPDATE orders SET ssh_public_key = NULLIF($2, ''), buyer_account_id = NULLIF($3, '')::uuid WHERE id = $1`,
		orderID, publicKey, buyerAccountID)
	return err
}

// OrderSSHKey returns the key typed at an order's checkout ("" for none) and whether the buyer
// was signed in to the account given.
func OrderSSHKey(ctx context.Context, q Querier, orderID, accountID string) (publicKey string, signedIn bool, err error) {
	err = q.QueryRow(ctx, `SELECT COALESCE(ssh_public_key, ''), COALESCE(buyer_account_id = $2::uuid, false) FROM orders WHERE id = $1`,
		orderID, accountID).Scan(&publicKey, &signedIn)
	return publicKey, signedIn, notFound(err, "order")
}
