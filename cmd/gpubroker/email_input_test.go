package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// Issue 19 item 8: an IP literal is no mailbox. Checkout (paid or trial), the sign-in and
// activation links and the contact form answer 422 fields.email, and nothing is stored or sent.
func TestEmailIPLiteralRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	refused := func(path string, body map[string]any) {
		t.Helper()
		code, answer := e.do(newBrowser(), "POST", path, body)
		require.Equal(t, http.StatusUnprocessableEntity, code, "%s %v: %v", path, body["email"], answer)
		require.Contains(t, answer["fields"], "email", "%s %v: %v", path, body["email"], answer)
	}
	for _, email := range []string{"ab@[169.254.169.254]", "ab@［169.254.169.254］", "a@127.0.0.1", "a@１２７.０.０.１"} {
		refused("/api/checkout", e.order(email, "free", "rtx4090", "us-east", 1))
		refused("/api/checkout", e.order(email, "pro", "a100", "us-east", 2))
		refused("/api/login", map[string]any{"email": email})
		refused("/api/activation/resend", map[string]any{"email": email})
		refused("/api/contact", map[string]any{"name": "Lin", "email": email, "company": "Corp", "message": "We need 64 H100s for a month."})
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
	trial := func(email string) (int, map[string]any) {
		t.Helper()
		return e.do(newBrowser(), "POST", "/api/checkout", e.order(email, "free", "rtx4090", "us-east", 1))
	}
	code, body := trial("ab@gmail.com")
	require.Equal(t, http.StatusCreated, code, body)
	for _, same := range []string{"ａb@ｇmail.com", "AB+x@googlemail.com", "ａ.ｂ＋x@ｇｏｏｇｌｅｍａｉｌ．ｃｏｍ"} {
		code, body = trial(same)
		require.Equal(t, http.StatusConflict, code, "%s: %v", same, body)
		require.Equal(t, "trial_used", body["error"], same)
	}

	code, body = trial("user@bücher.example")
	require.Equal(t, http.StatusCreated, code, body)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM trial_claims WHERE mailbox = 'user@xn--bcher-kva.example' AND email = 'user@bücher.example'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE email = 'user@bücher.example'`))
	code, body = trial("user+2@xn--bcher-kva.example")
	require.Equal(t, http.StatusConflict, code, body)
	require.Equal(t, "trial_used", body["error"])

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

	code, body := e.do(newBrowser(), "POST", "/api/login", map[string]any{"email": " Ｃd@ｅxample.com "})
	require.Equal(t, http.StatusAccepted, code, body)
	e.eventually("a second link for the pending account", func() bool { return len(e.mails(typed)) == 2 })
	require.Equal(t, "activation", e.mails(typed)[0]["kind"])
	require.Empty(t, e.mails("cd@example.com"), "nothing went to another spelling")
}
