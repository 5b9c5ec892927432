package main

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/api/apitest"
)

// verifyAs calls GET /api/checkout/verify from browser c with extra request headers. It never
// fails the test itself (Failure says what went wrong), so pollers may call it from their own
// goroutines; SetsCookie(api.SessionCookie) says whether it signed the browser in.
func (e *env) verifyAs(c *http.Client, sid string, hdr map[string]string) apitest.Result[api.VerifyAnswer] {
	cl := &apitest.Client{URL: e.url, HTTP: c}
	for k, v := range hdr {
		cl = cl.With(k, v)
	}
	return cl.Verify(sid)
}

// isSignedIn reports whether a verify answer is the full one and says it signed its browser in.
func isSignedIn(r apitest.Result[api.VerifyAnswer]) bool {
	return r.Body.Verify != nil && r.Body.SignedIn
}

// onlyStatus checks that a verify answer is the order's status and nothing else: no personal
// data, no pod, no session.
func onlyStatus(t *testing.T, r apitest.Result[api.VerifyAnswer], status string, why ...any) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Code, why...)
	require.JSONEq(t, `{"status":"`+status+`"}`, string(r.Raw), why...)
	require.False(t, r.SetsCookie(api.SessionCookie), why...)
}

// payAndWait pays a checkout and waits until the webhook job has attached its account.
func (e *env) payAndWait(sid string) {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	e.waitAttached(sid)
}

// waitAttached waits until the webhook job has attached a paid checkout's account.
func (e *env) waitAttached(sid string) {
	e.t.Helper()
	e.eventually("account attached", func() bool {
		return e.count(`SELECT count(*) FROM orders WHERE stripe_session_id = $1 AND account_id IS NOT NULL`, sid) == 1
	})
}

// Issue 8.1: the success page's sign-in raced activation. A dozen pollers of the verify link
// (tabs of the paying browser), while the owner clicks the activation link elsewhere, must all
// end signed out.
func TestVerifySignInNeverOutlivesActivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const pollers, rounds = 12, 4
	for round := 0; round < rounds; round++ {
		email := fmt.Sprintf("race%d@example.com", round)
		payer := newBrowser()
		_, sid := e.checkout(payer, email)
		e.payAndWait(sid)
		token := e.activationToken(email, 1)

		browsers := make([]*http.Client, pollers)
		polls := make([]atomic.Int32, pollers) // verify calls each poller has completed
		var signedIn atomic.Int32
		var failures atomic.Int32
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range browsers {
			browsers[i] = withCheckoutCookie(e, payer) // the payer's tabs
			wg.Go(func() {
				first := true
				for {
					select {
					case <-stop:
						return
					default:
					}
					res := e.verifyAs(browsers[i], sid, nil)
					if res.Failure != nil || res.Code != http.StatusOK {
						failures.Add(1)
						return
					}
					if first && isSignedIn(res) {
						signedIn.Add(1)
					}
					first = false
					polls[i].Add(1)
				}
			})
		}
		// Every poller is signed in (the account is still pending), then the owner activates
		// while they keep polling.
		e.eventually("every poller signed in", func() bool { return signedIn.Load() == pollers })
		owner := newBrowser()
		res := e.api(owner).Activate(token)
		require.Equal(t, http.StatusOK, res.Code, res)
		// Every poller keeps polling after the activation: two more calls each, so at least one
		// began after it had committed.
		after := make([]int32, pollers)
		for i := range polls {
			after[i] = polls[i].Load() + 2
		}
		e.eventually("every poller polled after the activation", func() bool {
			for i := range polls {
				if polls[i].Load() < after[i] && failures.Load() == 0 {
					return false
				}
			}
			return true
		})
		close(stop)
		wg.Wait()
		require.Zero(t, failures.Load(), "verify kept answering 200")

		survivors := 0
		for _, b := range browsers {
			if e.api(b).Me().Code != http.StatusUnauthorized {
				survivors++
			}
		}
		require.Zero(t, survivors, "round %d: %d of %d polling sessions survived activation", round, survivors, pollers)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE a.email = $1`, email),
			"round %d: only the owner's session is left in the database", round)
		require.Equal(t, http.StatusOK, e.api(owner).Me().Code)
	}
}

// Issue 8.2: the checkout that created the account is the one recorded when it was created,
// not the oldest order: an older checkout opened with the victim's email and paid after the
// victim's own must not sign its payer in.
func TestVerifySignsInOnlyTheCreatingCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	attacker := newBrowser()
	_, sidA := e.checkout(attacker, "mark@example.com")

	victim := newBrowser()
	sidB, v := e.paid(victim, "mark@example.com")
	require.True(t, v.SignedIn, "the victim's own checkout created the account")

	e.payAndWait(sidA)
	res := e.verifyAs(attacker, sidA, nil)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.NotNil(t, res.Body.Verify, res)
	require.False(t, res.Body.SignedIn)
	require.False(t, res.SetsCookie(api.SessionCookie), "no session cookie for the older checkout")
	require.Equal(t, http.StatusUnauthorized, e.api(attacker).Me().Code)

	// B's verify still signs its payer in, after A was attached too.
	b := victim
	res = e.verifyAs(b, sidB, nil)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code, res)
	require.True(t, isSignedIn(res))
	require.True(t, res.SetsCookie(api.SessionCookie))
	me := e.api(b).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.Len(t, me.Body.Pods, 2)
}

// Issue 8.3: a link to someone's verify URL (login CSRF) must not sign the clicking browser
// in, even the paying browser itself; the success page's own fetch and non-browser clients
// holding the checkout cookie still are. Since issue 19.1 nobody else is, however they ask.
func TestVerifyCrossSiteNavigationNeverSignsIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	buyer := newBrowser()
	_, sid := e.checkout(buyer, "csrf@example.com")
	e.payAndWait(sid)

	navigations := []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
		{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
		{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
		{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"},
		// A browser too old for Fetch Metadata still marks a navigation.
		{"Upgrade-Insecure-Requests": "1", "Accept": "text/html"},
	}
	for _, hdr := range navigations {
		res := e.verifyAs(buyer, sid, hdr)
		require.NoError(t, res.Failure)
		require.Equal(t, http.StatusOK, res.Code, hdr)
		require.NotNil(t, res.Body.Verify, hdr)
		require.False(t, res.Body.SignedIn, hdr)
		require.Equal(t, "csrf@example.com", res.Body.Account.Email, "the payer's browser reads the answer")
		require.False(t, res.SetsCookie(api.SessionCookie), hdr)
		require.Equal(t, http.StatusUnauthorized, e.api(buyer).Me().Code, hdr)
		// Another browser learns the status alone, and is never signed in.
		onlyStatus(t, e.verifyAs(newBrowser(), sid, hdr), "authorized", hdr)
	}

	// The success page's fetch is same-origin.
	res := e.verifyAs(buyer, sid, samePage)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code)
	require.True(t, isSignedIn(res))
	require.True(t, res.SetsCookie(api.SessionCookie))
	require.Equal(t, http.StatusOK, e.api(buyer).Me().Code)

	// A client that sends no Fetch Metadata (curl, a script) is not a browser being tricked:
	// with the checkout cookie it is signed in, without it it is not.
	cli := withCheckoutCookie(e, buyer)
	res = e.verifyAs(cli, sid, nil)
	require.NoError(t, res.Failure)
	require.Equal(t, http.StatusOK, res.Code)
	require.True(t, isSignedIn(res))
	require.True(t, res.SetsCookie(api.SessionCookie))
	res = e.verifyAs(newBrowser(), sid, nil)
	require.NoError(t, res.Failure)
	onlyStatus(t, res, "authorized")
	require.NotContains(t, string(res.Raw), "signed_in")
}

// withCheckoutCookie is a new browser holding payer's checkout cookie and nothing else: another
// tab or client of the same payer.
func withCheckoutCookie(e *env, payer *http.Client) *http.Client {
	c := newBrowser()
	u, _ := url.Parse(e.url + "/api/checkout/verify")
	for _, ck := range payer.Jar.Cookies(u) {
		if ck.Name == "gb_checkout" {
			c.Jar.SetCookies(u, []*http.Cookie{ck})
		}
	}
	return c
}

// Issue 8.4: one free trial per mailbox, and at most 3 trials per IP a day.
func TestOneFreeTrialPerMailbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{env: map[string]string{"TRUSTED_PROXY_HOPS": "1"}})
	trial := func(email, ip string) apitest.Result[api.CheckoutStarted] {
		t.Helper()
		return e.api(http.DefaultClient).With("X-Forwarded-For", ip).Checkout(e.order(email, "free", "rtx4090", "us-east", 1))
	}
	const ip = "203.0.113.7"
	res := trial("a+1@gmail.com", ip)
	require.Equal(t, http.StatusCreated, res.Code, res)
	for _, same := range []string{"a+2@gmail.com", "A+x@googlemail.com", "a@gmail.com"} {
		res = trial(same, ip)
		require.Equal(t, http.StatusConflict, res.Code, same)
		require.Equal(t, "trial_used", res.Err.Error, same)
	}
	res = trial("a.1+1@gmail.com", ip)
	require.Equal(t, http.StatusCreated, res.Code, res)
	res = trial("A.1+x@googlemail.com", ip)
	require.Equal(t, http.StatusConflict, res.Code, res)
	require.Equal(t, "trial_used", res.Err.Error)
	// Dots matter outside Gmail; tags do not.
	res = trial("o.ther@example.com", ip)
	require.Equal(t, http.StatusCreated, res.Code, res)
	res = trial("O.ther+again@Example.com", ip)
	require.Equal(t, http.StatusConflict, res.Code, res)

	// The email is stored as typed (lower-cased).
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE email = 'a.1+1@gmail.com'`))
	require.Equal(t, 3, e.count(`SELECT count(*) FROM orders`))

	// A fourth trial from the same address in a day is refused in the contract's shape.
	res = trial("fourth@example.com", ip)
	require.Equal(t, http.StatusTooManyRequests, res.Code, res)
	require.Equal(t, "rate_limited", res.Err.Error)
	require.NotEmpty(t, res.Err.Message)
	res = trial("fourth@example.com", "198.51.100.2")
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.Equal(t, 4, e.count(`SELECT count(*) FROM orders`))
}
