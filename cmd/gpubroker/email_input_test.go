package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/api/apitest"
)

// Issue 19 item 8: an IP literal is no mailbox. Checkout (paid or trial), the sign-in and
// activation links and the contact form answer 422 fields.email, and nothing is stored or sent.
func TestEmailIPLiteralRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	refused := func(what, email string, code int, err api.ErrorBody, raw []byte) {
		t.Helper()
		require.Equal(t, http.StatusUnprocessableEntity, code, "%s %v: %s", what, email, raw)
		require.Contains(t, err.Fields, "email", "%s %v: %s", what, email, raw)
	}
	for _, email := range []string{"ab@[169.254.169.254]", "ab@［169.254.169.254］", "a@127.0.0.1", "a@１２７.０.０.１"} {
		c := e.api(newBrowser())
		r := c.Checkout(e.order(email, "free", "rtx4090", "us-east", 1))
		refused("trial checkout", email, r.Code, r.Err, r.Raw)
		r = c.Checkout(e.order(email, "pro", "a100", "us-east", 2))
		refused("paid checkout", email, r.Code, r.Err, r.Raw)
		s := c.Login(email)
		refused("login", email, s.Code, s.Err, s.Raw)
		s = c.ResendActivation(email)
		refused("resend", email, s.Code, s.Err, s.Raw)
		s = c.Contact(api.ContactRequest{Name: "Lin", Email: email, Company: "Corp", Message: "We need 64 H100s for a month."})
		refused("contact", email, s.Code, s.Err, s.Raw)
	}
	for _, table := range []string{"orders", "trial_claims", "accounts", "contact_messages", "emails"} {
		require.Equal(t, 0, e.count(`SELECT count(*) FROM `+table), table)
	}
}

// One free trial per mailbox, whatever the Unicode spelling: a full-width address is the
// mailbox of its ASCII form, and an internationalised domain that of its punycode. The
// email is stored as typed.
func TestEmailUnicodeIsOneTrialMailbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	trial := func(email string) apitest.Result[api.CheckoutStarted] {
		t.Helper()
		return e.api(newBrowser()).Checkout(e.order(email, "free", "rtx4090", "us-east", 1))
	}
	res := trial("ab@gmail.com")
	require.Equal(t, http.StatusCreated, res.Code, res)
	for _, same := range []string{"ａb@ｇmail.com", "AB+x@googlemail.com", "ａ.ｂ＋x@ｇｏｏｇｌｅｍａｉｌ．ｃｏｍ"} {
		res = trial(same)
		require.Equal(t, http.StatusConflict, res.Code, "%s: %v", same, res)
		require.Equal(t, "trial_used", res.Err.Error, same)
	}

	res = trial("user@bücher.example")
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM trial_claims WHERE mailbox = 'user@xn--bcher-kva.example' AND email = 'user@bücher.example'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE email = 'user@bücher.example'`))
	res = trial("user+2@xn--bcher-kva.example")
	require.Equal(t, http.StatusConflict, res.Code, res)
	require.Equal(t, "trial_used", res.Err.Error)

	require.Equal(t, 2, e.count(`SELECT count(*) FROM orders`))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM trial_claims`))
}

// The account of an address typed in full-width is the one that address finds again: the
// email is stored as typed (lower-cased), and the sign-in form looks it up the same way.
func TestEmailFullWidthSignsInAsTyped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const typed = "ｃd@ｅxample.com"
	e.paid(newBrowser(), typed)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts WHERE email = $1`, typed))
	e.eventually("activation email", func() bool { return len(e.mails(typed)) == 1 })

	res := e.api(newBrowser()).Login(" Ｃd@ｅxample.com ")
	require.Equal(t, http.StatusAccepted, res.Code, res)
	e.eventually("a second link for the pending account", func() bool { return len(e.mails(typed)) == 2 })
	require.Equal(t, "activation", e.mails(typed)[0].Kind)
	require.Empty(t, e.mails("cd@example.com"), "nothing went to another spelling")
}
