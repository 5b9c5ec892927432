package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"
)

func TestPaidSignUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	orderID, sid := e.checkout(c, "Ada@Example.com")

	// Before payment the success page waits.
	code, body := e.do(c, "GET", "/api/checkout/verify?session_id="+sid, nil)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, "pending", body["status"])

	resp := e.pay(sid, "4242 4242 4242 4242")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Location"), "/payment/success/?session_id="+sid)

	e.eventually("verify 200", func() bool {
		code, body = e.do(c, "GET", "/api/checkout/verify?session_id="+sid, nil)
		return code == http.StatusOK
	})
	acct := body["account"].(map[string]any)
	require.Equal(t, "ada@example.com", acct["email"])
	require.Equal(t, "pending", acct["status"])
	require.Equal(t, "authorized", body["order"].(map[string]any)["status"])
	require.Equal(t, orderID, body["order"].(map[string]any)["id"])

	// The cookie signs the buyer in; the account is not active until the email is confirmed.
	code, me := e.do(c, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, me["pods"], 1)
	pod := me["pods"].([]any)[0].(map[string]any)
	require.Equal(t, "configured", pod["status"])
	require.EqualValues(t, 4900+2*179, pod["amount_cents"])
	require.NotEmpty(t, pod["hold_expires_at"])

	var mails []map[string]any
	e.eventually("activation email", func() bool { mails = e.mails("ada@example.com"); return len(mails) == 1 })
	require.Equal(t, "activation", mails[0]["kind"])
	require.Contains(t, mails[0]["html"], "/activate/?token=")
	token := tokenOf(t, link(t, mails[0], "/activate/"))

	code, body = e.do(c, "POST", "/api/activate", map[string]any{"token": token})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "active", body["account"].(map[string]any)["status"])
	code, me = e.do(c, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "active", me["account"].(map[string]any)["status"])

	// Single use.
	code, body = e.do(c, "POST", "/api/activate", map[string]any{"token": token})
	require.Equal(t, http.StatusGone, code)
	require.Equal(t, "token_used", body["error"])

	// The release of the unused hold is scheduled 6 days out, in the same transaction.
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'release_hold' AND state = 'scheduled' AND scheduled_at > now() + interval '5 days'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'account.created'`))

	// Logout clears the session.
	code, _ = e.do(c, "POST", "/api/logout", nil)
	require.Equal(t, http.StatusNoContent, code)
	code, _ = e.do(c, "GET", "/api/me", nil)
	require.Equal(t, http.StatusUnauthorized, code)
}

func TestFreeTrialAndTrialUsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	code, body := e.do(c, "POST", "/api/checkout", e.order("free@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, code, body)
	require.Nil(t, body["checkout_url"])
	require.Equal(t, "check_email", body["next"])

	code, body = e.do(c, "POST", "/api/activate", map[string]any{"token": e.activationToken("free@example.com", 1)})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 0, e.count(`SELECT count(*) FROM river_job WHERE kind = 'release_hold'`), "a free trial holds nothing")

	code, body = e.do(newBrowser(), "POST", "/api/checkout", e.order("FREE@example.com ", "free", "a10", "us-west", 1))
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "trial_used", body["error"])
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders`))
}

// Webhooks: duplicates and extra events for one session make one account and one email.
func TestWebhookDuplicatesAndReorders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	_, sid := e.checkout(c, "dup@example.com")
	e.pay(sid, "4242424242424242")
	e.eventually("authorized", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE status = 'authorized'`) == 1
	})
	completed := e.m.StripeSim.Events()[0]
	require.Equal(t, "checkout.session.completed", completed.Type)

	// The same event 5 times, concurrently.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Go(func() {
			code, err := e.m.StripeSim.Resend(context.Background(), completed.ID)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
		})
	}
	wg.Wait()
	// 5 different events for the same session (a new id each, same object).
	for i := 0; i < 5; i++ {
		raw := strings.Replace(string(completed.Raw), completed.ID, fmt.Sprintf("evt_dup_%d", i), 1)
		code, err := e.m.StripeSim.Deliver(context.Background(), []byte(raw))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	e.eventually("every event processed", func() bool {
		return e.count(`SELECT count(*) FROM stripe_events WHERE processed_at IS NULL`) == 0
	})
	require.Equal(t, 6, e.count(`SELECT count(*) FROM stripe_events`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM emails`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'release_hold'`))

	// Expired after completed: the order stays authorized.
	expired := strings.NewReplacer(completed.ID, "evt_late_expired", `"checkout.session.completed"`, `"checkout.session.expired"`).Replace(string(completed.Raw))
	code, err := e.m.StripeSim.Deliver(context.Background(), []byte(expired))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	e.eventually("processed", func() bool {
		return e.count(`SELECT count(*) FROM stripe_events WHERE processed_at IS NULL`) == 0
	})
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE status = 'authorized'`))
}

// A hold cancelled before the completed event is processed never becomes authorized.
func TestCompletedAfterCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	_, sid := e.checkout(c, "late@example.com")
	// Pay without delivering webhooks, cancel the hold, then deliver in reverse order.
	e.m.StripeSim.PauseDelivery(true)
	res, err := e.m.StripeSim.Pay(context.Background(), sid, "4242424242424242")
	require.NoError(t, err)
	require.NoError(t, e.m.StripeSim.LapseHold(context.Background(), res.PaymentIntentID))
	e.m.StripeSim.PauseDelivery(false)
	evs := e.m.StripeSim.Events()
	require.Len(t, evs, 2)
	for i := len(evs) - 1; i >= 0; i-- {
		code, err := e.m.StripeSim.Resend(context.Background(), evs[i].ID)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	e.eventually("processed", func() bool {
		return e.count(`SELECT count(*) FROM stripe_events WHERE processed_at IS NULL`) == 0 && e.count(`SELECT count(*) FROM stripe_events`) == 2
	})
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE status = 'released'`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM accounts`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM emails`))
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	payload := []byte(`{"id":"evt_x","object":"event","type":"checkout.session.completed","api_version":"2023-10-16","data":{"object":{"id":"cs_x","object":"checkout.session"}}}`)
	post := func(body []byte, sig string) int {
		req, _ := http.NewRequest("POST", e.url+"/api/stripe/webhook", strings.NewReader(string(body)))
		if sig != "" {
			req.Header.Set("Stripe-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(body []byte, secret string, at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
	}
	require.Equal(t, http.StatusBadRequest, post(payload, sign(payload, "whsec_forged", time.Now())), "forged")
	require.Equal(t, http.StatusBadRequest, post(payload, sign(payload, "whsec_dev", time.Now().Add(-10*time.Minute))), "10 minutes old")
	require.Equal(t, http.StatusBadRequest, post(payload, ""), "missing header")
	big := make([]byte, 300<<10)
	require.Equal(t, http.StatusRequestEntityTooLarge, post(big, sign(big, "whsec_dev", time.Now())), "300 KiB")
	require.Equal(t, 0, e.count(`SELECT count(*) FROM stripe_events`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM river_job`))

	// A correctly signed event is stored once and acknowledged on redelivery.
	require.Equal(t, http.StatusOK, post(payload, sign(payload, "whsec_dev", time.Now())))
	require.Equal(t, http.StatusOK, post(payload, sign(payload, "whsec_dev", time.Now())))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM stripe_events`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'stripe_event'`))

	// The database is down: 503 so Stripe retries.
	e.m.Pool.Close()
	payload2 := []byte(strings.Replace(string(payload), "evt_x", "evt_y", 1))
	require.Equal(t, http.StatusServiceUnavailable, post(payload2, sign(payload2, "whsec_dev", time.Now())))
}

func TestDeclinedCardAndSecondOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	_, sid := e.checkout(c, "decline@example.com")
	resp := e.pay(sid, "4000000000000002")
	require.NotEqual(t, http.StatusSeeOther, resp.StatusCode)
	e.idle()
	require.Equal(t, 0, e.count(`SELECT count(*) FROM accounts`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM emails`))
	code, _ := e.do(c, "GET", "/api/checkout/verify?session_id="+sid, nil)
	require.Equal(t, http.StatusAccepted, code)

	// The same person pays twice: one account with two orders.
	b1, pod1 := e.signUp("two@example.com")
	_, sid2 := e.checkout(newBrowser(), "two@example.com")
	e.pay(sid2, "4242424242424242")
	e.eventually("second order attached", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE email = 'two@example.com' AND account_id IS NOT NULL`) == 2
	})
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts WHERE email = 'two@example.com'`))
	code, me := e.do(b1, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, me["pods"], 2)
	require.NotEmpty(t, pod1)
}

func TestExpiredCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	_, sid := e.checkout(c, "slow@example.com")
	require.NoError(t, e.m.StripeSim.ExpireSession(context.Background(), sid))
	e.eventually("expired", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE status = 'expired'`) == 1
	})
	code, body := e.do(c, "GET", "/api/checkout/verify?session_id="+sid, nil)
	require.Equal(t, http.StatusGone, code)
	require.Equal(t, "expired", body["error"])
	code, _ = e.do(c, "GET", "/api/checkout/verify?session_id=cs_unknown", nil)
	require.Equal(t, http.StatusNotFound, code)
}

func TestActivationTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	code, body := e.do(c, "POST", "/api/activate", map[string]any{"token": "bogus"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "token_invalid", body["error"])

	_, _ = e.do(c, "POST", "/api/checkout", e.order("tok@example.com", "free", "rtx4090", "us-east", 1))
	e.eventually("activation email", func() bool { return len(e.mails("tok@example.com")) == 1 })
	token := tokenOf(t, link(t, e.mails("tok@example.com")[0], "/activate/"))
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE tokens SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	code, body = e.do(c, "POST", "/api/activate", map[string]any{"token": token})
	require.Equal(t, http.StatusGone, code)
	require.Equal(t, "token_expired", body["error"])

	// Resend always answers 202, and mails only a real pending account.
	code, _ = e.do(c, "POST", "/api/activation/resend", map[string]any{"email": "nobody@example.com"})
	require.Equal(t, http.StatusAccepted, code)
	code, _ = e.do(c, "POST", "/api/activation/resend", map[string]any{"email": "tok@example.com"})
	require.Equal(t, http.StatusAccepted, code)
	e.eventually("second email", func() bool { return len(e.mails("tok@example.com")) == 2 })
	require.Empty(t, e.mails("nobody@example.com"))
	code, _ = e.do(c, "POST", "/api/activate", map[string]any{"token": tokenOf(t, link(t, e.mails("tok@example.com")[0], "/activate/"))})
	require.Equal(t, http.StatusOK, code)

	// A returning user signs in with a magic link.
	other := newBrowser()
	code, _ = e.do(other, "POST", "/api/login", map[string]any{"email": "tok@example.com"})
	require.Equal(t, http.StatusAccepted, code)
	e.eventually("login email", func() bool { return len(e.mails("tok@example.com")) == 3 })
	login := e.mails("tok@example.com")[0]
	require.Equal(t, "login", login["kind"])
	code, _ = e.do(other, "POST", "/api/login/verify", map[string]any{"token": tokenOf(t, link(t, login, "/login/"))})
	require.Equal(t, http.StatusOK, code)
	code, _ = e.do(other, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
}

// Paying with someone else's email must never open their account.
func TestVerifyNeverSignsIntoAnotherAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	victim, _ := e.signUp("victim@example.com")

	attacker := newBrowser()
	_, body := e.paid(attacker, "victim@example.com")
	require.Equal(t, false, body["signed_in"])
	code, _ := e.do(attacker, "GET", "/api/me", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, me := e.do(victim, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, me["pods"], 2, "the order is the victim's to deploy, after they sign in")
}

// A session opened before the email was proven ends when the owner activates.
func TestActivationEndsEarlierSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	squatter := newBrowser()
	e.paid(squatter, "owner@example.com")
	code, _ := e.do(squatter, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)

	owner := newBrowser()
	code, _ = e.do(owner, "POST", "/api/activate", map[string]any{"token": e.activationToken("owner@example.com", 1)})
	require.Equal(t, http.StatusOK, code)
	code, _ = e.do(squatter, "GET", "/api/me", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = e.do(owner, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
}

func TestContactForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	code, body := e.do(newBrowser(), "POST", "/api/contact", map[string]any{"name": "", "email": "nope", "message": "hi"})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, body["fields"], "email")
	require.Contains(t, body["fields"], "message")
	require.Equal(t, 0, e.count(`SELECT count(*) FROM contact_messages`))

	code, _ = e.do(newBrowser(), "POST", "/api/contact", map[string]any{"name": "Lin", "email": "lin@corp.example", "company": "Corp <b>", "message": "We need 64 H100s for a month."})
	require.Equal(t, http.StatusAccepted, code)
	e.eventually("sales email", func() bool { return len(e.mails("sales@gpubroker.dev")) == 1 })
	m := e.mails("sales@gpubroker.dev")[0]
	require.Equal(t, "contact", m["kind"])
	require.Contains(t, m["text"], "64 H100s")
	require.Contains(t, m["html"], "Corp &lt;b&gt;")
}
