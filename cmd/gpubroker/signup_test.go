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

	"gpubroker/api"
)

func TestPaidSignUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	orderID, sid := e.checkout(c, "Ada@Example.com")

	// Before payment the success page waits.
	res := e.api(c).Verify(sid)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	require.Equal(t, "pending", res.Body.Status.Status)

	resp := e.pay(sid, "4242 4242 4242 4242")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Location"), "/payment/success/?session_id="+sid)

	e.eventually("verify 200", func() bool {
		res = e.api(c).Verify(sid)
		return res.Code == http.StatusOK
	})
	v := res.Body.Verify
	require.Equal(t, "ada@example.com", v.Account.Email)
	require.Equal(t, "pending", v.Account.Status)
	require.Equal(t, "authorized", string(v.Order.Status))
	require.Equal(t, orderID, v.Order.ID)

	// The cookie signs the buyer in; the account is not active until the email is confirmed.
	me := e.api(c).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.Len(t, me.Body.Pods, 1)
	pod := me.Body.Pods[0]
	require.Equal(t, "configured", string(pod.Status))
	require.EqualValues(t, 4900+2*179, pod.AmountCents)
	require.NotEmpty(t, pod.HoldExpiresAt)

	var mails []api.DevEmail
	e.eventually("activation email", func() bool { mails = e.mails("ada@example.com"); return len(mails) == 1 })
	require.Equal(t, "activation", mails[0].Kind)
	require.Contains(t, mails[0].HTML, "/activate/?token=")
	token := tokenOf(t, link(t, mails[0], "/activate/"))

	signIn := e.api(c).Activate(token)
	require.Equal(t, http.StatusOK, signIn.Code, signIn)
	require.Equal(t, "active", signIn.Body.Account.Status)
	me = e.api(c).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.Equal(t, "active", me.Body.Account.Status)

	// Single use.
	signIn = e.api(c).Activate(token)
	require.Equal(t, http.StatusGone, signIn.Code)
	require.Equal(t, "token_used", signIn.Err.Error)

	// The release of the unused hold is scheduled 6 days out, in the same transaction.
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'release_hold' AND state = 'scheduled' AND scheduled_at > now() + interval '5 days'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'account.created'`))

	// Logout clears the session.
	require.Equal(t, http.StatusNoContent, e.api(c).Logout().Code)
	require.Equal(t, http.StatusUnauthorized, e.api(c).Me().Code)
}

func TestFreeTrialAndTrialUsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	res := e.api(c).Checkout(e.order("free@example.com", "free", "rtx4090", "us-east", 1))
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.Nil(t, res.Body.CheckoutURL)
	require.Contains(t, string(res.Raw), `"checkout_url":null`)
	require.Equal(t, "check_email", res.Body.Next)

	signIn := e.api(c).Activate(e.activationToken("free@example.com", 1))
	require.Equal(t, http.StatusOK, signIn.Code, signIn)
	require.Equal(t, 0, e.count(`SELECT count(*) FROM river_job WHERE kind = 'release_hold'`), "a free trial holds nothing")

	res = e.api(newBrowser()).Checkout(e.order("FREE@example.com ", "free", "a10", "us-west", 1))
	require.Equal(t, http.StatusConflict, res.Code)
	require.Equal(t, "trial_used", res.Err.Error)
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
	require.Equal(t, http.StatusAccepted, e.api(c).Verify(sid).Code)

	// The same person pays twice: one account with two orders.
	b1, pod1 := e.signUp("two@example.com")
	_, sid2 := e.checkout(newBrowser(), "two@example.com")
	e.pay(sid2, "4242424242424242")
	e.eventually("second order attached", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE email = 'two@example.com' AND account_id IS NOT NULL`) == 2
	})
	require.Equal(t, 1, e.count(`SELECT count(*) FROM accounts WHERE email = 'two@example.com'`))
	me := e.api(b1).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.Len(t, me.Body.Pods, 2)
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
	res := e.api(c).Verify(sid)
	require.Equal(t, http.StatusGone, res.Code)
	require.Equal(t, "expired", res.Err.Error)
	require.Equal(t, http.StatusNotFound, e.api(c).Verify("cs_unknown").Code)
}

func TestActivationTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	res := e.api(c).Activate("bogus")
	require.Equal(t, http.StatusBadRequest, res.Code)
	require.Equal(t, "token_invalid", res.Err.Error)

	e.api(c).Checkout(e.order("tok@example.com", "free", "rtx4090", "us-east", 1))
	e.eventually("activation email", func() bool { return len(e.mails("tok@example.com")) == 1 })
	token := tokenOf(t, link(t, e.mails("tok@example.com")[0], "/activate/"))
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE tokens SET expires_at = now() - interval '1 second'`)
	require.NoError(t, err)
	res = e.api(c).Activate(token)
	require.Equal(t, http.StatusGone, res.Code)
	require.Equal(t, "token_expired", res.Err.Error)

	// Resend always answers 202, and mails only a real pending account.
	require.Equal(t, http.StatusAccepted, e.api(c).ResendActivation("nobody@example.com").Code)
	require.Equal(t, http.StatusAccepted, e.api(c).ResendActivation("tok@example.com").Code)
	e.eventually("second email", func() bool { return len(e.mails("tok@example.com")) == 2 })
	require.Empty(t, e.mails("nobody@example.com"))
	require.Equal(t, http.StatusOK, e.api(c).Activate(tokenOf(t, link(t, e.mails("tok@example.com")[0], "/activate/"))).Code)

	// A returning user signs in with a magic link.
	other := newBrowser()
	require.Equal(t, http.StatusAccepted, e.api(other).Login("tok@example.com").Code)
	e.eventually("login email", func() bool { return len(e.mails("tok@example.com")) == 3 })
	login := e.mails("tok@example.com")[0]
	require.Equal(t, "login", login.Kind)
	require.Equal(t, http.StatusOK, e.api(other).LoginVerify(tokenOf(t, link(t, login, "/login/"))).Code)
	require.Equal(t, http.StatusOK, e.api(other).Me().Code)
}

// Paying with someone else's email must never open their account.
func TestVerifyNeverSignsIntoAnotherAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	victim, _ := e.signUp("victim@example.com")

	attacker := newBrowser()
	_, v := e.paid(attacker, "victim@example.com")
	require.False(t, v.SignedIn)
	require.Equal(t, http.StatusUnauthorized, e.api(attacker).Me().Code)
	me := e.api(victim).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.Len(t, me.Body.Pods, 2, "the order is the victim's to deploy, after they sign in")
}

// A session opened before the email was proven ends when the owner activates.
func TestActivationEndsEarlierSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	squatter := newBrowser()
	e.paid(squatter, "owner@example.com")
	require.Equal(t, http.StatusOK, e.api(squatter).Me().Code)

	owner := newBrowser()
	require.Equal(t, http.StatusOK, e.api(owner).Activate(e.activationToken("owner@example.com", 1)).Code)
	require.Equal(t, http.StatusUnauthorized, e.api(squatter).Me().Code)
	require.Equal(t, http.StatusOK, e.api(owner).Me().Code)
}

func TestContactForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	res := e.api(newBrowser()).Contact(api.ContactRequest{Name: "", Email: "nope", Message: "hi"})
	require.Equal(t, http.StatusUnprocessableEntity, res.Code)
	require.Contains(t, res.Err.Fields, "email")
	require.Contains(t, res.Err.Fields, "message")
	require.Equal(t, 0, e.count(`SELECT count(*) FROM contact_messages`))

	res = e.api(newBrowser()).Contact(api.ContactRequest{Name: "Lin", Email: "lin@corp.example", Company: "Corp <b>", Message: "We need 64 H100s for a month."})
	require.Equal(t, http.StatusAccepted, res.Code, res)
	e.eventually("sales email", func() bool { return len(e.mails("sales@gpubroker.dev")) == 1 })
	m := e.mails("sales@gpubroker.dev")[0]
	require.Equal(t, "contact", m.Kind)
	require.Contains(t, m.Text, "64 H100s")
	require.Contains(t, m.HTML, "Corp &lt;b&gt;")
}
