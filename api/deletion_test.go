package api

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// deletionLink is the token of the newest deletion email sent to email.
func deletionLink(t *testing.T, ts *testServer, email string) string {
	t.Helper()
	var body string
	require.NoError(t, ts.pool.QueryRow(context.Background(),
		`SELECT text_body FROM emails WHERE to_email = $1 AND kind = 'account_deletion' ORDER BY id DESC LIMIT 1`, email).Scan(&body))
	m := regexp.MustCompile(`/account/delete/\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	require.NotNil(t, m, body)
	return m[1]
}

// paidOrder stores a captured order of the account with its payment and a pod in podStatus.
func paidOrder(t *testing.T, ts *testServer, email, orderStatus, podStatus string) string {
	t.Helper()
	ctx := context.Background()
	var id string
	require.NoError(t, ts.pool.QueryRow(ctx, `INSERT INTO orders (account_id, email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, status)
		SELECT id, email, 'Ada Lovelace', 'pay-per-use', 'data-science', 'a100', 'us-east', 2, 299, 598, $2 FROM accounts WHERE email = $1 RETURNING id`, email, orderStatus).Scan(&id))
	_, err := ts.pool.Exec(ctx, `INSERT INTO pods (order_id, account_id, status, gpu, region, hours, template) SELECT id, account_id, $2, gpu, region, hours, template FROM orders WHERE id = $1`, id, podStatus)
	require.NoError(t, err)
	if orderStatus == "captured" {
		_, err = ts.pool.Exec(ctx, `INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours) VALUES ($1, 'order', $2, 598, 2)`, id, "pi_"+id)
		require.NoError(t, err)
	}
	return id
}

// DELETE /api/me emails a link; following it removes the account's personal data in one go
// and keeps its orders and payments, anonymised.
func TestAccountDeletion(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	const email = "gone@example.com"
	session := ts.signIn(email)
	other := ts.signIn("stays@example.com")
	code, _ := ts.call("POST", "/api/me/ssh-keys", map[string]string{"name": "laptop", "public_key": newKeyLine(t)}, session)
	require.Equal(t, http.StatusCreated, code)
	orderID := paidOrder(t, ts, email, "captured", "terminated")
	_, err := ts.pool.Exec(context.Background(), `INSERT INTO trial_claims (mailbox, email, order_id) VALUES ('gone@example.com', 'gone+gpu@example.com', $1)`, orderID)
	require.NoError(t, err)
	_, err = ts.pool.Exec(context.Background(), `UPDATE orders SET email = 'gone+gpu@example.com' WHERE id = $1`, orderID)
	require.NoError(t, err)

	code, body := ts.call("DELETE", "/api/me", nil, session)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, "confirmation_sent", body["status"])
	token := deletionLink(t, ts, email)

	// Another account's link deletes that account only; a bad token is refused.
	code, _ = ts.call("DELETE", "/api/me", nil, other)
	require.Equal(t, http.StatusAccepted, code)
	otherToken := deletionLink(t, ts, "stays@example.com")
	code, body = ts.call("POST", "/api/me/delete", map[string]string{"token": "nonsense"}, session)
	require.Equal(t, http.StatusBadRequest, code, body)

	w := ts.do("POST", "/api/me/delete", []byte(`{"token":"`+token+`"}`), http.Header{"Origin": {testPublicURL}, "Cookie": {SessionCookie + "=" + session}})
	checkAnswer(t, "confirm", w)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"status":"deleted"`)
	require.Contains(t, w.Header().Get("Set-Cookie"), SessionCookie+"=;")

	// The old session is refused; the token is spent.
	code, _ = ts.call("GET", "/api/me", nil, session)
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = ts.call("POST", "/api/me/delete", map[string]string{"token": token}, "")
	require.Equal(t, http.StatusGone, code, body)

	// No personal data is left anywhere; orders and payments stay, anonymised.
	for _, q := range []string{
		`SELECT count(*) FROM accounts WHERE email = 'gone@example.com' OR (email LIKE 'deleted-%' AND name <> '')`,
		`SELECT count(*) FROM trial_claims WHERE email LIKE 'gone%' OR mailbox LIKE 'gone%'`,
		`SELECT count(*) FROM orders WHERE email LIKE 'gone%' OR name = 'Ada Lovelace' AND email LIKE 'deleted-%'`,
		`SELECT count(*) FROM emails WHERE to_email = 'gone@example.com' OR text_body LIKE '%gone@example.com%' OR html_body LIKE '%gone@example.com%'`,
		`SELECT count(*) FROM ssh_keys k JOIN accounts a ON a.id = k.account_id WHERE a.status = 'deleted'`,
		`SELECT count(*) FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE a.status = 'deleted'`,
		`SELECT count(*) FROM audit_events WHERE detail::text LIKE '%gone@example.com%'`,
	} {
		require.Zero(t, count(t, ts, q), q)
	}
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM accounts WHERE status = 'deleted' AND email = 'deleted-' || id || '@invalid' AND name = ''`))
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM orders o JOIN accounts a ON a.id = o.account_id WHERE o.id = '`+orderID+`' AND o.email = a.email AND a.status = 'deleted' AND o.amount_cents = 598`))
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM payments WHERE order_id = '`+orderID+`'`))
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM audit_events WHERE action = 'account.deleted'`))
	// The free-trial claim keeps only a hash of the mailbox, and still refuses a second trial.
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM trial_claims WHERE mailbox LIKE 'sha256:%' AND email LIKE 'deleted-%@invalid'`))
	_, err = ts.pool.Exec(context.Background(), `INSERT INTO trial_claims (mailbox, email, order_id) VALUES ('gone@example.com', 'gone@example.com', $1)`, orderID)
	require.ErrorContains(t, err, "23505")

	// The other account is untouched, and its own link still works for it alone.
	code, body = ts.call("GET", "/api/me", nil, other)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "stays@example.com", body["account"].(map[string]any)["email"])
	code, _ = ts.call("POST", "/api/me/delete", map[string]string{"token": otherToken}, session)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 2, count(t, ts, `SELECT count(*) FROM accounts WHERE status = 'deleted'`))

	// The address can sign up again as a new account (a sign-in link finds nothing to send).
	code, _ = ts.call("POST", "/api/login", map[string]string{"email": email}, "")
	require.Equal(t, http.StatusAccepted, code)
	require.Zero(t, count(t, ts, `SELECT count(*) FROM emails WHERE kind = 'login'`))
}

// While money is still moving (a pod running, a hold not yet released) deletion is refused,
// saying which.
func TestAccountDeletionRefusedWhilePodActive(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	session := ts.signIn("busy@example.com")
	paidOrder(t, ts, "busy@example.com", "captured", "running")
	code, body := ts.call("DELETE", "/api/me", nil, session)
	require.Equal(t, http.StatusConflict, code, body)
	require.Equal(t, "pod_active", body["error"])
	require.True(t, strings.Contains(body["message"].(string), "running"), body["message"])

	held := ts.signIn("held@example.com")
	paidOrder(t, ts, "held@example.com", "authorized", "configured")
	code, body = ts.call("DELETE", "/api/me", nil, held)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body["message"], "hold")
	require.Zero(t, count(t, ts, `SELECT count(*) FROM emails WHERE kind = 'account_deletion'`))
}
