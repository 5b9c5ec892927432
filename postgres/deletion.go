package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// DeletionBlocker says why an account cannot be deleted yet, "" when it can: a pod that is
// running or on its way up or down (deploying, provisioning, running, terminating), or an
// authorized order whose card hold is not yet captured or released. Until those settle money
// is still moving, and the customer needs their account to see it through.
func DeletionBlocker(ctx context.Context, q Querier, accountID string) (string, error) {
	var podStatus *string
	err := q.QueryRow(ctx, `SELECT status FROM pods WHERE account_id = $1 AND status IN ('deploying', 'provisioning', 'running', 'terminating')
		ORDER BY created_at LIMIT 1`, accountID).Scan(&podStatus)
	if err != nil && err != pgx.ErrNoRows {
		return "", err
	}
	if podStatus != nil {
		return fmt.Sprintf("A pod of yours is %s. Terminate it and wait until it has ended, then delete your account.", *podStatus), nil
	}
	var held bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orders WHERE (account_id = $1 OR buyer_account_id = $1) AND status = $2)`,
		accountID, gpubroker.OrderAuthorized).Scan(&held); err != nil {
		return "", err
	}
	if held {
		return "An order of yours still has a card hold that is not yet released. Deploy its pod or wait until the hold is released, then delete your account.", nil
	}
	return "", nil
}

// DeleteAccount removes an account's personal data in the caller's transaction, after locking
// the account row and checking DeletionBlocker again under the lock (ECONFLICT pod_active).
// Gone: its sessions, SSH keys, unused tokens, the rate-limit counters keyed by its mailbox,
// suppressions, SES feedback and contact messages under its address, the address in audit
// details, the payloads of the Stripe events of its orders, and the subjects and bodies of its emails. Kept, anonymised: the account row (email gpubroker.DeletedEmail, name empty,
// status deleted), its orders (same email, name and SSH key empty) with their payments and refunds, the
// outbox rows (addressed to gpubroker.DeletedEmail, bodies empty; pending ones are never sent), and the
// free-trial claim of its mailbox as a SHA-256 only, so the one-trial-per-mailbox rule still
// holds (migration 021's trigger).
func DeleteAccount(ctx context.Context, tx pgx.Tx, accountID string) error {
	var email string
	var status gpubroker.AccountStatus
	err := tx.QueryRow(ctx, `SELECT email, status FROM accounts WHERE id = $1 FOR UPDATE`, accountID).Scan(&email, &status)
	if err != nil {
		return notFound(err, "account")
	}
	if status == gpubroker.AccountDeleted {
		return gpubroker.Errorf(gpubroker.EGONE, "account_deleted", "This account has already been deleted.")
	}
	why, err := DeletionBlocker(ctx, tx, accountID)
	if err != nil {
		return err
	}
	if why != "" {
		return &gpubroker.Error{Code: gpubroker.ECONFLICT, Reason: "pod_active", Message: why}
	}
	gone := gpubroker.DeletedEmail(accountID)
	mailbox := gpubroker.Mailbox(email)
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM sessions WHERE account_id = $1`, []any{accountID}},
		{`DELETE FROM ssh_keys WHERE account_id = $1`, []any{accountID}},
		// the used link stays until retention prunes it, so a second use is 410, not 400
		{`DELETE FROM tokens WHERE account_id = $1 AND used_at IS NULL`, []any{accountID}},
		{`DELETE FROM rate_limits WHERE key LIKE '%:email:' || $1 OR key LIKE '%:email:' || $2`, []any{mailbox, email}},
		{`DELETE FROM suppressions WHERE email = $1`, []any{email}},
		{`DELETE FROM email_feedback WHERE email = $1`, []any{email}},
		{`DELETE FROM contact_messages WHERE email = $1`, []any{email}},
		{`UPDATE emails SET to_email = $2, subject = '', text_body = '', html_body = '',
			status = CASE WHEN status = 'pending' THEN 'suppressed' ELSE status END,
			error = CASE WHEN status = 'pending' THEN 'account deleted' ELSE error END
			WHERE to_email = $1`, []any{email, gone}},
		{`UPDATE trial_claims SET mailbox = 'sha256:' || encode(sha256(convert_to(mailbox, 'UTF8')), 'hex'), email = $2
			WHERE email = $1 OR order_id IN (SELECT id FROM orders WHERE account_id = $3 OR buyer_account_id = $3)`, []any{email, gone, accountID}},
		{`UPDATE orders SET email = $2, name = '', ssh_public_key = NULL WHERE account_id = $1 OR buyer_account_id = $1 OR email = $3`, []any{accountID, gone, email}},
		// Stripe's copies of the checkout carry the email; retention empties them after 30 days
		{`WITH o AS (SELECT id, stripe_session_id, payment_intent_id FROM orders WHERE account_id = $1 OR buyer_account_id = $1)
			UPDATE stripe_events SET payload = NULL WHERE processed_at IS NOT NULL AND payload IS NOT NULL
			AND (order_id IN (SELECT id FROM o) OR object_id IN (SELECT stripe_session_id FROM o UNION SELECT payment_intent_id FROM o
				UNION SELECT p.payment_intent_id FROM payments p WHERE p.order_id IN (SELECT id FROM o)))`, []any{accountID}},
		// the account.created and email.suppressed entries name the address
		{`UPDATE audit_events SET detail = detail - 'email' WHERE detail ->> 'email' = $1`, []any{email}},
		{`UPDATE accounts SET email = $2, name = '', status = $3 WHERE id = $1`, []any{accountID, gone, gpubroker.AccountDeleted}},
	} {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return err
		}
	}
	return Audit(ctx, tx, AuditEvent{AccountID: accountID, Action: gpubroker.ActionAccountDeleted})
}
