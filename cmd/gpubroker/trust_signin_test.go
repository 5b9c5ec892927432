package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// verifyAs calls GET /api/checkout/verify from browser c with extra request headers and
// reports the answer and whether it set a session cookie. It never fails the test itself, so
// pollers may call it from their own goroutines.
func (e *env) verifyAs(c *http.Client, sid string, hdr map[string]string) (code int, body map[string]any, cookie bool, err error) {
	req, err := http.NewRequest("GET", e.url+"/api/checkout/verify?session_id="+sid, nil)
	if err != nil {
		return 0, nil, false, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body = map[string]any{}
	_ = json.Unmarshal(raw, &body)
	for _, ck := range resp.Cookies() {
		if ck.Name == "gb_session" && ck.Value != "" {
			cookie = true
		}
	}
	return resp.StatusCode, body, cookie, nil
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
					code, body, _, err := e.verifyAs(browsers[i], sid, nil)
					if err != nil || code != http.StatusOK {
						failures.Add(1)
						return
					}
					if first && body["signed_in"] == true {
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
		code, body := e.do(owner, "POST", "/api/activate", map[string]any{"token": token})
		require.Equal(t, http.StatusOK, code, body)
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
			if code, _ := e.do(b, "GET", "/api/me", nil); code != http.StatusUnauthorized {
				survivors++
			}
		}
		require.Zero(t, survivors, "round %d: %d of %d polling sessions survived activation", round, survivors, pollers)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE a.email = $1`, email),
			"round %d: only the owner's session is left in the database", round)
		code, _ = e.do(owner, "GET", "/api/me", nil)
		require.Equal(t, http.StatusOK, code)
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
	sidB, body := e.paid(victim, "mark@example.com")
	require.Equal(t, true, body["signed_in"], "the victim's own checkout created the account")

	e.payAndWait(sidA)
	code, body, cookie, err := e.verifyAs(attacker, sidA, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, false, body["signed_in"])
	require.False(t, cookie, "no session cookie for the older checkout")
	code, _ = e.do(attacker, "GET", "/api/me", nil)
	require.Equal(t, http.StatusUnauthorized, code)

	// B's verify still signs its payer in, after A was attached too.
	b := victim
	code, body, cookie, err = e.verifyAs(b, sidB, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, true, body["signed_in"])
	require.True(t, cookie)
	code, me := e.do(b, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, me["pods"], 2)
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
		code, body, cookie, err := e.verifyAs(buyer, sid, hdr)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, hdr)
		require.Equal(t, false, body["signed_in"], hdr)
		require.Equal(t, "csrf@example.com", body["account"].(map[string]any)["email"], "the payer's browser reads the answer")
		require.False(t, cookie, hdr)
		code, _ = e.do(buyer, "GET", "/api/me", nil)
		require.Equal(t, http.StatusUnauthorized, code, hdr)
		// Another browser learns the status alone, and is never signed in.
		code, body, cookie, err = e.verifyAs(newBrowser(), sid, hdr)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, hdr)
		require.Equal(t, map[string]any{"status": "authorized"}, body, hdr)
		require.False(t, cookie, hdr)
	}

	// The success page's fetch is same-origin.
	code, body, cookie, err := e.verifyAs(buyer, sid, samePage)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, true, body["signed_in"])
	require.True(t, cookie)
	code, _ = e.do(buyer, "GET", "/api/me", nil)
	require.Equal(t, http.StatusOK, code)

	// A client that sends no Fetch Metadata (curl, a script) is not a browser being tricked:
	// with the checkout cookie it is signed in, without it it is not.
	cli := withCheckoutCookie(e, buyer)
	code, body, cookie, err = e.verifyAs(cli, sid, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, true, body["signed_in"])
	require.True(t, cookie)
	code, body, cookie, err = e.verifyAs(newBrowser(), sid, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "signed_in")
	require.False(t, cookie)
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
	trial := func(email, ip string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(e.order(email, "free", "rtx4090", "us-east", 1))
		req, err := http.NewRequest("POST", e.url+"/api/checkout", bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", e.url)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	const ip = "203.0.113.7"
	code, body := trial("a+1@gmail.com", ip)
	require.Equal(t, http.StatusCreated, code, body)
	for _, same := range []string{"a+2@gmail.com", "A+x@googlemail.com", "a@gmail.com"} {
		code, body = trial(same, ip)
		require.Equal(t, http.StatusConflict, code, same)
		require.Equal(t, "trial_used", body["error"], same)
	}
	code, body = trial("a.1+1@gmail.com", ip)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = trial("A.1+x@googlemail.com", ip)
	require.Equal(t, http.StatusConflict, code, body)
	require.Equal(t, "trial_used", body["error"])
	// Dots matter outside Gmail; tags do not.
	code, body = trial("o.ther@example.com", ip)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = trial("O.ther+again@Example.com", ip)
	require.Equal(t, http.StatusConflict, code, body)

	// The email is stored as typed (lower-cased).
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE email = 'a.1+1@gmail.com'`))
	require.Equal(t, 3, e.count(`SELECT count(*) FROM orders`))

	// A fourth trial from the same address in a day is refused in the contract's shape.
	code, body = trial("fourth@example.com", ip)
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Equal(t, "rate_limited", body["error"])
	require.NotEmpty(t, body["message"])
	code, body = trial("fourth@example.com", "198.51.100.2")
	require.Equal(t, http.StatusCreated, code, body)
	require.Equal(t, 4, e.count(`SELECT count(*) FROM orders`))
}
