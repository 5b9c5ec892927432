package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Issue 25, conversion from the first visit: each page view is counted (POST /api/pageviews,
// after load) with no cookie set, so the funnel starts at visitors.
func TestBrowserCountsVisitsWithoutCookies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowserSession(t)
	views := func() int { return e.count(`SELECT COALESCE(sum(n), 0)::int FROM page_views`) }
	b.run("visit-home", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(css("main")))
	e.eventually("the home page's view counted", func() bool { return views() == 1 })
	b.run("visit-plans", chromedp.Navigate(e.url+"/plans/"), chromedp.WaitVisible(css("main")))
	e.eventually("two views counted", func() bool { return views() == 2 })
	require.Equal(t, 1, e.count(`SELECT COALESCE(sum(n), 0)::int FROM page_views WHERE path = '/'`))
	require.Equal(t, 1, e.count(`SELECT COALESCE(sum(n), 0)::int FROM page_views WHERE path = '/plans/'`))

	require.Equal(t, "", value[string](b, `document.cookie`))
	var all struct {
		Cookies []struct {
			Name string `json:"name"`
		} `json:"cookies"`
	}
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Network.getAllCookies", nil, &all)
	})))
	require.Empty(t, all.Cookies, "no cookie at all, HttpOnly ones included")

	// The same requests by hand: no Set-Cookie on the pages or the beacon's answer.
	for _, p := range []string{"/", "/plans/"} {
		resp, err := http.Get(e.url + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Empty(t, resp.Header.Values("Set-Cookie"), p)
	}
	req, err := http.NewRequest("POST", e.url+"/api/pageviews", strings.NewReader(`{"path":"/"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", e.url)
	req.Header.Set("User-Agent", "Mozilla/5.0 Chrome/131.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Empty(t, resp.Header.Values("Set-Cookie"))
}

// Issue 25, straight to the dashboard: the browser that paid (it holds the checkout cookie)
// is signed in by verify and taken to its dashboard with a short message; a browser holding
// only the session id stays on the page with the status.
func TestBrowserPaymentSuccessGoesToDashboard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	payer := newBrowserSession(t)
	order, err := json.Marshal(e.order("straight@example.com", "pro", "a100", "us-east", 2))
	require.NoError(t, err)
	payer.run("start", chromedp.Navigate(e.url+"/get-started/"), chromedp.WaitVisible(css("main")))
	// The get-started page's own request, so the browser holds the checkout cookie.
	link, err := chromedp.Run(payer.ctx, chromedp.Evaluate[string](`fetch("/api/checkout", {method: "POST", headers: {"Content-Type": "application/json"}, body: `+jsString(string(order))+`}).then(r => r.json()).then(d => d.checkout_url)`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	sid := e.sessionOf(&link)
	require.Equal(t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)

	stranger := newBrowserSession(t)
	stranger.run("stranger", chromedp.Navigate(e.url+"/payment/success/?session_id="+sid),
		poll(`document.querySelector("#verify-status").dataset.state === "authorized"`))

	payer.run("payer", chromedp.Navigate(e.url+"/payment/success/?session_id="+sid),
		poll(`!!document.querySelector("#verify-redirect")`))
	require.Contains(t, value[string](payer, `document.querySelector("#verify-redirect").textContent`), "Taking you to your dashboard")
	e.eventually("the payer on the dashboard", func() bool {
		path, err := chromedp.Run(payer.ctx, chromedp.Evaluate[string](`location.pathname`))
		return err == nil && path == "/dashboard/" // (an error while the page navigates)
	})
	payer.run("dashboard", chromedp.WaitVisible(css(".pod")))

	time.Sleep(2500 * time.Millisecond) // longer than the payer's redirect took
	require.Equal(t, "/payment/success/", value[string](stranger, `location.pathname`), "no redirect without a session")
	require.Equal(t, "authorized", value[string](stranger, `document.querySelector("#verify-status").dataset.state`))
	require.False(t, value[bool](stranger, `!!document.querySelector("#verify-redirect")`))
}
