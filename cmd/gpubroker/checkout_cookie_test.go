package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
)

// samePage are the Fetch Metadata headers of the success page's own fetch of verify.
var samePage = map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}

// keysOf lists the fingerprints of every key stored on the account of an email, provisional
// ones included.
func (e *env) keysOf(email string) []string {
	e.t.Helper()
	rows, err := e.m.Pool.Query(e.t.Context(), `SELECT k.fingerprint FROM ssh_keys k JOIN accounts a ON a.id = k.account_id WHERE a.email = $1 ORDER BY k.fingerprint`, email)
	require.NoError(e.t, err)
	var out []string
	for rows.Next() {
		var fp string
		require.NoError(e.t, rows.Scan(&fp))
		out = append(out, fp)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// activateIn opens email's (first) activation link in browser c.
func (e *env) activateIn(c *http.Client, email string) {
	e.t.Helper()
	res := e.api(c).Activate(e.activationToken(email, 1))
	require.Equal(e.t, http.StatusOK, res.Code, res)
}

// Issue 19.1: an attacker checks out with the victim's email and their own key, pays, and
// sends the victim the real success link. The page's own fetch of verify in the victim's
// browser must not sign it in, and when the victim activates from that browser the attacker's
// key must go: the session id in a URL is no proof of being the payer.
func TestSuccessLinkPlantsNoKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	attackerKey, _ := newKey(t, "mallory")
	sid := e.paidCheckout(newBrowser(), "victim@example.com", attackerKey)
	e.waitAttached(sid)

	victim := newBrowser()
	res := e.verifyAs(victim, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.False(t, res.SetsCookie(api.SessionCookie), "the victim's browser was signed in to the attacker's checkout")
	require.False(t, isSignedIn(res))

	e.activateIn(victim, "victim@example.com")
	keys := e.api(victim).SSHKeys()
	require.Equal(t, http.StatusOK, keys.Code)
	require.Empty(t, keys.Body.SSHKeys, "the attacker's key is on the victim's account")
	require.Empty(t, e.keysOf("victim@example.com"))
}

// Issue 19.1, the variant: anyone holding a payer's cs_… id calls verify without browser
// headers. They get no session, so they cannot add a key; and the payer, activating in the
// browser that paid, keeps the key typed at checkout and the one added on the success page.
func TestSessionIDHolderGetsNoSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	payerKey, payerFP := newKey(t, "ada@checkout")
	laterKey, laterFP := newKey(t, "ada@success-page")
	strangerKey, _ := newKey(t, "mallory")

	payer := newBrowser()
	sid := e.paidCheckout(payer, "ada@example.com", payerKey)
	e.waitAttached(sid)

	stranger := newBrowser()
	res := e.verifyAs(stranger, sid, nil)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.False(t, res.SetsCookie(api.SessionCookie), "a client holding only the session id was signed in")
	added := e.api(stranger).AddSSHKey("mine", strangerKey)
	require.Equal(t, http.StatusUnauthorized, added.Code, added)

	// The paying browser keeps its auto-login and may add a key before activating.
	res = e.verifyAs(payer, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.True(t, res.SetsCookie(api.SessionCookie))
	require.True(t, isSignedIn(res))
	added = e.api(payer).AddSSHKey("later", laterKey)
	require.Equal(t, http.StatusCreated, added.Code, added)

	e.activateIn(payer, "ada@example.com")
	require.ElementsMatch(t, []string{payerFP, laterFP}, e.keysOf("ada@example.com"))
	require.Zero(t, e.count(`SELECT count(*) FROM audit_events WHERE action = 'ssh_keys.dropped'`))
}

// Issue 19.1: keys record the checkout whose payer added them, not the session: a payer's own
// two sessions of one checkout cookie (a reload of the success page opens a second) each add a
// key, and activation from the browser keeps both.
func TestActivationKeepsOnlyThePayersKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	tabKey, tabFP := newKey(t, "ada@tab1")
	otherTabKey, otherTabFP := newKey(t, "ada@tab2")

	payer := newBrowser()
	sid := e.paidCheckout(payer, "tabs@example.com", "")
	e.eventually("verify signs the payer in", func() bool {
		res := e.verifyAs(payer, sid, samePage)
		return res.Failure == nil && res.Code == http.StatusOK && isSignedIn(res)
	})
	added := e.api(payer).AddSSHKey("tab1", tabKey)
	require.Equal(t, http.StatusCreated, added.Code, added)
	// A reload of the success page opens a second session of the same checkout.
	res := e.verifyAs(payer, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.True(t, res.SetsCookie(api.SessionCookie))
	added = e.api(payer).AddSSHKey("tab2", otherTabKey)
	require.Equal(t, http.StatusCreated, added.Code, added)

	e.activateIn(payer, "tabs@example.com")
	require.ElementsMatch(t, []string{tabFP, otherTabFP}, e.keysOf("tabs@example.com"))
}

// Issue 19.9: verify gives the buyer's name, email and pod only to the browser holding the
// checkout's cookie (within a day of payment) or to a session of the account the order landed
// on; anyone else holding the cs_… id gets the status alone.
func TestVerifyAnswersStrangersOnlyTheStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	payer := newBrowser()
	sid, full := e.paid(payer, "grace@example.com")
	require.Equal(t, "grace@example.com", full.Account.Email)
	require.NotEmpty(t, full.Pod.ID)

	statusOnly := func(c *http.Client, hdr map[string]string, why string) {
		t.Helper()
		onlyStatus(t, e.verifyAs(c, sid, hdr), "authorized", why)
	}
	statusOnly(newBrowser(), nil, "a stranger without browser headers")
	statusOnly(newBrowser(), samePage, "a stranger's browser")

	// Activated in another browser: the payer's provisional session ends, and its checkout
	// cookie still reads the full answer for a day.
	owner := newBrowser()
	e.activateIn(owner, "grace@example.com")
	res := e.verifyAs(payer, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code)
	require.False(t, res.SetsCookie(api.SessionCookie), "no session once the account is active")
	require.NotNil(t, res.Body.Verify, res)
	require.Equal(t, "grace@example.com", res.Body.Account.Email)

	// The account's own session reads it whenever.
	_, err := e.m.Pool.Exec(t.Context(), `UPDATE orders SET authorized_at = authorized_at - interval '25 hours' WHERE stripe_session_id = $1`, sid)
	require.NoError(t, err)
	res = e.verifyAs(owner, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code)
	require.NotNil(t, res.Body.Verify, res)
	require.Equal(t, "grace@example.com", res.Body.Account.Email)
	// The checkout cookie does not, a day after payment.
	statusOnly(payer, samePage, "the payer's cookie a day after payment")
}
