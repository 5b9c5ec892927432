package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/api/apitest"
)

// Deletion on request, end to end over real HTTP: refused while the pod runs; once it has
// ended, DELETE /api/me emails a link, following it removes the account's personal data and
// signs every browser out, its orders and payments stay anonymised, and the address can order
// again as a new account.
func TestAccountDeletionJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const email = "forget.me@example.com"
	c, podID := e.runningPod(email, 1)
	key, _ := newKey(t, "ada@laptop")
	require.Equal(t, http.StatusCreated, e.api(c).AddSSHKey("laptop", key).Code)

	res := apitest.Do[api.Status](e.api(c), "DELETE", "/api/me", nil)
	require.Equal(t, http.StatusConflict, res.Code, res)
	require.Equal(t, "pod_active", res.Err.Error)
	require.Contains(t, res.Err.Message, "running")

	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	e.idle()

	res = apitest.Do[api.Status](e.api(c), "DELETE", "/api/me", nil)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	require.Equal(t, "confirmation_sent", res.Body.Status)
	var mails []api.DevEmail
	e.eventually("deletion email", func() bool {
		mails = e.mails(email)
		return len(mails) > 0 && mails[0].Kind == "account_deletion"
	})
	token := tokenOf(t, link(t, mails[0], "/account/delete/"))

	// Another account's session asks for its own account only, and is refused while its
	// card hold is not yet released.
	other, _ := e.signUp("someone.else@example.com")
	res = apitest.Do[api.Status](e.api(other), "DELETE", "/api/me", nil)
	require.Equal(t, http.StatusConflict, res.Code, res)
	require.Contains(t, res.Err.Message, "card hold")
	require.Equal(t, 1, len(e.mails("someone.else@example.com")), "no deletion email for a refused request")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts WHERE email = $1`, email))

	// The confirm page posts the token from a browser that is not signed in.
	confirm := apitest.Do[api.Status](e.api(newBrowser()), "POST", "/api/me/delete", api.TokenRequest{Token: token})
	require.Equal(t, http.StatusOK, confirm.Code, confirm)
	require.Equal(t, "deleted", confirm.Body.Status)
	cleared := false
	for _, ck := range (&http.Response{Header: confirm.Header}).Cookies() {
		cleared = cleared || (ck.Name == api.SessionCookie && ck.MaxAge < 0)
	}
	require.True(t, cleared, "the answer clears the session cookie")

	require.Equal(t, http.StatusUnauthorized, e.api(c).Me().Code, "the old session is refused")
	again := apitest.Do[api.Status](e.api(newBrowser()), "POST", "/api/me/delete", api.TokenRequest{Token: token})
	require.Equal(t, http.StatusGone, again.Code, again)
	require.Equal(t, http.StatusOK, e.api(other).Me().Code, "the other account is untouched")

	for _, q := range []string{
		`SELECT count(*) FROM accounts WHERE email LIKE 'forget.me%' OR (status = 'deleted' AND name <> '')`,
		`SELECT count(*) FROM orders WHERE email LIKE 'forget.me%'`,
		`SELECT count(*) FROM emails WHERE to_email LIKE 'forget.me%' OR text_body LIKE '%forget.me%' OR html_body LIKE '%forget.me%'`,
		`SELECT count(*) FROM ssh_keys k JOIN accounts a ON a.id = k.account_id WHERE a.status = 'deleted'`,
		`SELECT count(*) FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE a.status = 'deleted'`,
		`SELECT count(*) FROM audit_events WHERE detail::text LIKE '%forget.me%'`,
		`SELECT count(*) FROM stripe_events WHERE payload::text LIKE '%forget.me%'`,
	} {
		require.Zero(t, e.count(q), q)
	}
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders o JOIN accounts a ON a.id = o.account_id
		WHERE a.status = 'deleted' AND o.email = 'deleted-' || a.id || '@invalid' AND o.name = '' AND o.amount_cents > 0`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id JOIN accounts a ON a.id = o.account_id WHERE a.status = 'deleted'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'account.deleted'`))

	// The address can order again: a new account.
	_, v := e.paid(newBrowser(), email)
	require.NotNil(t, v.Order.AccountID)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts WHERE email = $1 AND status = 'pending' AND id = $2`, email, *v.Order.AccountID))
}
