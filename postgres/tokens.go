package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// NewSecret returns 32 random bytes, base64url-encoded, and the SHA-256 that is stored in their
// place: a database leak does not leak working tokens or sessions.
func NewSecret() (secret string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret returns the stored form of a token or session secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// IssueToken creates a single-use token for an account and returns the secret to email.
func IssueToken(ctx context.Context, tx pgx.Tx, accountID, purpose string, now time.Time) (string, error) {
	ttl := gpubroker.TokenTTL(purpose)
	secret, hash := NewSecret()
	_, err := tx.Exec(ctx, `INSERT INTO tokens (hash, account_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hash, accountID, purpose, now, now.Add(ttl))
	return secret, err
}

// ConsumeToken marks a token used and returns its account id. Unknown tokens are
// token_invalid (400), expired ones token_expired (410), used ones token_used (410). The row
// lock makes two concurrent uses end in one success.
func ConsumeToken(ctx context.Context, tx pgx.Tx, secret, purpose string, now time.Time) (string, error) {
	var accountID string
	var expiresAt time.Time
	var usedAt *time.Time
	err := tx.QueryRow(ctx, `SELECT account_id, expires_at, used_at FROM tokens WHERE hash = $1 AND purpose = $2 FOR UPDATE`,
		HashSecret(secret), purpose).Scan(&accountID, &expiresAt, &usedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", &gpubroker.Error{Code: gpubroker.EBADREQUEST, Reason: "token_invalid", Message: "This link is not valid. Request a new one."}
	case err != nil:
		return "", err
	case usedAt != nil:
		return "", &gpubroker.Error{Code: gpubroker.EGONE, Reason: "token_used", Message: "This link has already been used. Sign in, or request a new link."}
	case !now.Before(expiresAt):
		return "", &gpubroker.Error{Code: gpubroker.EGONE, Reason: "token_expired", Message: "This link has expired. Request a new one."}
	}
	_, err = tx.Exec(ctx, `UPDATE tokens SET used_at = $2 WHERE hash = $1`, HashSecret(secret), now)
	return accountID, err
}

// CreateSession starts a browser session and returns the cookie value.
func CreateSession(ctx context.Context, q Querier, accountID string, now time.Time) (string, time.Time, error) {
	secret, hash := NewSecret()
	expires := now.Add(gpubroker.SessionTTL)
	_, err := q.Exec(ctx, `INSERT INTO sessions (hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`, hash, accountID, now, expires)
	return secret, expires, err
}

// CreateCheckoutSession signs in the buyer of a paid checkout (the caller has checked that the
// browser holds the checkout's cookie): only into the account that checkout's order created
// (accounts.created_by_order_id), and only while that account is still pending. The session
// records the order, whose payer the keys it adds belong to (ActivateAccount). The session is provisional (via_checkout): nobody has proven they own the
// email, so activation ends it. The share lock on the account row, taken in the caller's
// transaction with the insert, orders it against ActivateAccount: either this commits first
// and activation deletes the session, or activation commits first and ok is false.
func CreateCheckoutSession(ctx context.Context, tx pgx.Tx, accountID, orderID string, now time.Time) (secret string, expires time.Time, ok bool, err error) {
	err = tx.QueryRow(ctx, `SELECT status = 'pending' AND COALESCE(created_by_order_id = $2::uuid, false)
		FROM accounts WHERE id = $1 FOR SHARE`, accountID, orderID).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil || !ok {
		return "", time.Time{}, false, err
	}
	secret, hash := NewSecret()
	expires = now.Add(gpubroker.SessionTTL)
	_, err = tx.Exec(ctx, `INSERT INTO sessions (hash, account_id, created_at, expires_at, via_checkout, order_id) VALUES ($1, $2, $3, $4, true, $5)`,
		hash, accountID, now, expires, orderID)
	if err != nil {
		return "", time.Time{}, false, err
	}
	return secret, expires, true, nil
}

// SessionAccount returns the account of a live session. A session opened by paying
// (via_checkout) is refused once the account is active, whenever it was opened.
func SessionAccount(ctx context.Context, q Querier, secret string, now time.Time) (*gpubroker.Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `SELECT a.id, a.email, a.name, a.status, a.created_at, a.activated_at
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.hash = $1 AND s.expires_at > $2 AND NOT (s.via_checkout AND a.status <> 'pending')`, HashSecret(secret), now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "Sign in to continue.")
	}
	return a, err
}

// SessionPayerOrder is the checkout whose cookie opened a provisional session (via_checkout),
// or "" for any other session.
func SessionPayerOrder(ctx context.Context, q Querier, secret string) (string, error) {
	var orderID *string
	err := q.QueryRow(ctx, `SELECT order_id::text FROM sessions WHERE hash = $1 AND via_checkout`, HashSecret(secret)).Scan(&orderID)
	if errors.Is(err, pgx.ErrNoRows) || orderID == nil {
		return "", nil
	}
	return *orderID, err
}

// SetCheckoutCookie records the SHA-256 of the checkout cookie the paying browser holds: only
// that browser is the payer of the order (IsCheckoutPayer).
func SetCheckoutCookie(ctx context.Context, q Querier, orderID, cookie string) error {
	_, err := q.Exec(ctx, `UPDATE orders SET checkout_cookie_hash = $2 WHERE id = $1`, orderID, HashSecret(cookie))
	return err
}

// IsCheckoutPayer reports whether cookie is the checkout cookie of the order's paying browser.
func IsCheckoutPayer(ctx context.Context, q Querier, orderID, cookie string) (bool, error) {
	if cookie == "" {
		return false, nil
	}
	var ok bool
	err := q.QueryRow(ctx, `SELECT COALESCE(checkout_cookie_hash = $2, false) FROM orders WHERE id = $1`, orderID, HashSecret(cookie)).Scan(&ok)
	return ok, notFound(err, "order")
}

// DeleteSession ends a session.
func DeleteSession(ctx context.Context, q Querier, secret string) error {
	_, err := q.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, HashSecret(secret))
	return err
}
