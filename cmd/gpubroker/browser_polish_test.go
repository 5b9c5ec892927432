package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Issue 25 item 9 (polish), each a test that failed before its fix.

// atPhone emulates a 360×740 phone (the narrowest common one).
func atPhone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2))
}

// overflow is a JavaScript expression: how many CSS pixels the page is wider than the window.
const overflow = `document.documentElement.scrollWidth - innerWidth`

// wider is a JavaScript expression: the elements reaching past the window's right edge.
const wider = `[...document.body.querySelectorAll("*")].filter(el => el.getBoundingClientRect().right > innerWidth + 0.5 && !el.closest(".table-scroll,.sr-only")).slice(0, 8).map(el => el.tagName + "." + el.className + " " + Math.round(el.getBoundingClientRect().right))`

// smallTargets is a JavaScript expression: the links matched by sel smaller than 24×24 CSS px
// (WCAG 2.5.8), each with its size.
func smallTargets(sel string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%q)].filter(a => a.getClientRects().length).map(a => [a, a.getBoundingClientRect()]).filter(([a, r]) => r.width < 24 || r.height < 24).map(([a, r]) => a.textContent.trim() + " " + Math.round(r.width) + "x" + Math.round(r.height))`, sel)
}

// The refund policy's formula and /gpus/ do not scroll sideways on a 360 px phone, and the
// footer's and the GPU table's links are at least 24×24 px, on desktop and phone.
func TestBrowserPolishPhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowserSession(t)
	for _, page := range []string{"/refund-policy/", "/gpus/", "/", "/plans/", "/get-started/"} {
		b.run("polish-phone"+page, atPhone(), chromedp.Navigate(e.url+page), chromedp.WaitVisible(css("footer")), chromedp.Sleep(200*time.Millisecond))
		require.LessOrEqual(t, value[int](b, overflow), 0, "%s scrolls sideways at 360 px: %v", page, value[[]string](b, wider))
		require.Empty(t, value[[]string](b, smallTargets("footer a, td a")), "%s: tap targets under 24 px at 360 px", page)
		require.NoError(t, chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 900)))
		require.Empty(t, value[[]string](b, smallTargets("footer a, td a")), "%s: tap targets under 24 px", page)
	}

	// /gpus/ with the live prices (the worker's /offers.json) still fits.
	e = newEnv(t, envOpts{periodic: true})
	e.eventually("offers published", func() bool {
		resp, err := http.Get(e.url + "/offers.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	b.run("polish-phone-live", atPhone(), chromedp.Navigate(e.url+"/gpus/"), poll(`document.querySelector("#prices-updated") && document.querySelector("#prices-updated").dataset.live === "true"`))
	require.LessOrEqual(t, value[int](b, overflow), 0, "/gpus/ with live prices scrolls sideways at 360 px: %v", value[[]string](b, wider))
}

// One click on the activation page activates, and its lead then says the result and the next
// step instead of "One click confirms…".
func TestBrowserPolishActivation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	e.paid(c, "polish-activate@example.com")
	token := e.activationToken("polish-activate@example.com", 1)
	b := newBrowserSession(t)
	b.run("polish-activate", chromedp.Navigate(e.url+"/activate/?token="+token), chromedp.WaitVisible(css("#activate-btn")),
		chromedp.Click(css("#activate-btn")), poll(`document.querySelector("#activate-status").dataset.state === "active"`))
	lead := value[string](b, `document.querySelector("#activate-lead").textContent`)
	require.NotContains(t, lead, "One click confirms")
	require.Contains(t, lead, "Your account is active")
	require.True(t, value[bool](b, `document.querySelector("#activate-status[role=status]").textContent.includes("Your account is active")`), "the result is announced")
}

// A key the server would refuse is refused on the details step, before Pay.
func TestBrowserPolishBadKeyOnStepOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowserSession(t)
	for _, key := range []string{
		"ssh-ed25519 AAAAnotbase64!! me@laptop",                          // not base64
		"ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 me@laptop",         // an RSA blob named ed25519
		"ssh-dss AAAAB3NzaC1kc3MAAACBAP me@laptop",                       // DSA: refused by the server
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ9n2dyq7VrY1Dg2H3 me@lap", // cut short
	} {
		b.run("polish-bad-key "+key, chromedp.Navigate(e.url+"/get-started/"), chromedp.WaitVisible(css("#email")),
			js(`document.querySelector("#email").value = "polish-key@example.com"; document.querySelector("#name").value = "Key Test"`),
			js(`document.querySelector("#ssh_public_key").value = `+jsString(key)), chromedp.Click(css("#next-1")),
			poll(`!document.querySelector("#ssh_public_key-error").hidden`))
		require.False(t, value[bool](b, `document.querySelector("#step-1").hidden`), key)
	}
	// A good key goes on.
	b.run("polish-good-key", chromedp.Navigate(e.url+"/get-started/"), chromedp.WaitVisible(css("#email")),
		js(`document.querySelector("#email").value = "polish-key@example.com"; document.querySelector("#name").value = "Key Test"`),
		js(`document.querySelector("#ssh_public_key").value = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ9n2dyq7VrY1Dg2H3rQ2sY3NCbLMtcrc4b0wXYZxZz alice@laptop"`),
		chromedp.Click(css("#next-1")), poll(`!document.querySelector("#step-2").hidden`))

	// Refused at checkout all the same (a 422 on ssh_public_key): back to the details step with
	// the server's message beside the key, everything typed kept.
	b.run("polish-key-refused", js(`document.querySelector("#plan-pro").click()`), chromedp.Click(css("#next-2")),
		poll(`!document.querySelector("#step-3").hidden`), js(`document.querySelector("input[name=template]").click()`), chromedp.Click(css("#next-3")),
		poll(`!document.querySelector("#step-4").hidden`), poll(`document.querySelector("#total").textContent !== "—"`), chromedp.Click(css("#next-4")),
		poll(`!document.querySelector("#step-5").hidden`),
		js(`(() => { const f = window.fetch; window.fetch = (u, o) => String(u).includes("/api/checkout") ? Promise.resolve(new Response(JSON.stringify({error: "invalid_fields", message: "Some fields need attention.", fields: {ssh_public_key: "Refused by the server."}}), {status: 422, headers: {"Content-Type": "application/json"}})) : f(u, o) })()`),
		chromedp.Click(css("#pay")), poll(`!document.querySelector("#step-1").hidden`))
	require.Equal(t, "Refused by the server.", value[string](b, `document.querySelector("#ssh_public_key-error").textContent`))
	require.True(t, value[bool](b, visible("#ssh_public_key-error")))
	require.Contains(t, value[string](b, `document.querySelector("#ssh_public_key").value`), "alice@laptop")
	require.Equal(t, "polish-key@example.com", value[string](b, `document.querySelector("#email").value`))
	// Continue goes straight back to the review, not through the four steps again.
	b.run("polish-key-back", chromedp.Click(css("#next-1")), poll(`!document.querySelector("#step-5").hidden`))
}

// The order form says until when Pro is active in the one format ("Mon 7 Dec 2026, 21:15 CET").
func TestBrowserPolishOneDateFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, _ := e.runningPod("polish-dates@example.com", 1)
	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.inZone("Europe/Paris")
	b.run("polish-dates", chromedp.Navigate(e.url+"/get-started/"), poll(`/active until/.test(document.querySelector(".plan-summary[data-plan=pro]").textContent)`))
	s := value[string](b, `document.querySelector(".plan-summary[data-plan=pro]").textContent`)
	require.Regexp(t, `active until (Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} CES?T:`, s)
}

// The dashboard never shows the provider's internal name "sim", a starting pod shows its
// progress and no disabled Deploy, and an ended pod says what it cost net.
func TestBrowserPolishDashboard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("polish-dash@example.com", 3)
	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.run("polish-dash-running", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.pod[data-status="running"]`)))
	require.NotContains(t, value[string](b, `document.querySelector(".pod .facts").textContent`), "sim")

	e.ranFor(podID, tenMinutesIn)
	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	var p rentalView
	e.eventually("refunded", func() bool { p = e.rentalPod(c, podID); return p.RefundedCents != nil && *p.RefundedCents > 0 })
	b.run("polish-dash-ended", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.pod[data-status="terminated"]`)))
	net := value[string](b, factOf("Net paid"))
	res := e.api(c).Pod(podID)
	require.Equal(t, http.StatusOK, res.Code, res.String())
	pt := res.Body
	require.Equal(t, fmt.Sprintf("$%d.%02d", (pt.PaidCents-pt.RefundedCents)/100, (pt.PaidCents-pt.RefundedCents)%100), net)

	// "Rent again" opens the order form filled in as this pod was (issue 25, the GPU journey).
	b.run("polish-dash-rent-again", chromedp.Click(css(`.pod[data-status="terminated"] .rent-again`)),
		chromedp.WaitReady(css("#gpu")), poll(`location.pathname === "/get-started/" && document.querySelector("#gpu").value !== ""`))
	require.Equal(t, pt.GPU, value[string](b, `document.querySelector("#gpu").value`))
	require.Equal(t, pt.Region, value[string](b, `document.querySelector("#region").value`))
	require.Equal(t, fmt.Sprint(pt.Hours), value[string](b, `document.querySelector("#hours").value`))
	require.Equal(t, pt.Template, value[string](b, `document.querySelector('input[name="template"]:checked').value`))
}

// A pod starting up shows its progress, not a disabled Deploy button.
func TestBrowserPolishStartingPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: time.Minute})
	c, podID := e.signUp("polish-start@example.com")
	e.deploy(c, podID)
	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.run("polish-starting", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.pod[data-status="provisioning"], .pod[data-status="deploying"]`)),
		chromedp.WaitVisible(css(".pod .pod-progress")))
	require.Zero(t, value[int](b, `document.querySelectorAll(".pod .deploy-btn").length`), "no Deploy button while starting")
	require.True(t, value[bool](b, `!!document.querySelector(".pod .pod-progress[role=status]")`), "the progress is announced")
}

// One click activates on a phone too, in a browser that was signed in before (its header asks
// who is signed in while the page loads).
func TestBrowserPolishActivationPhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	e.paid(c, "polish-activate-phone@example.com")
	token := e.activationToken("polish-activate-phone@example.com", 1)
	b := newBrowserSession(t)
	b.run("polish-activate-phone", atPhone(), chromedp.Navigate(e.url+"/"), js(`localStorage.setItem("gb-signed-in", "1")`),
		chromedp.Navigate(e.url+"/activate/?token="+token), chromedp.WaitVisible(css("#activate-btn")),
		chromedp.Click(css("#activate-btn")), poll(`document.querySelector("#activate-status").dataset.state === "active"`))
	require.Contains(t, value[string](b, `document.querySelector("#activate-lead").textContent`), "Your account is active")
}
