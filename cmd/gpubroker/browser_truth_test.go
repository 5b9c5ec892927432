package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Issue 25 item 5: a pod whose Deploy may not be pressed (the account's email is not
// confirmed) is not "Ready to deploy"; once it may be, it is.
func TestBrowserReadyOnlyWhenDeployable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const email = "not-ready@example.com"
	c := newBrowser()
	e.paid(c, email)

	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.run("blocked", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.deploy-btn[disabled]`)))
	text := value[string](b, `document.querySelector(".pod").innerText`)
	require.Contains(t, text, value[string](b, `document.querySelector(".deploy-reason").textContent`))
	require.NotContains(t, text, "Ready to deploy", "beside a disabled Deploy")
	require.Equal(t, "Not ready to deploy", value[string](b, `document.querySelector(".pod-status").textContent`))

	e.activateIn(c, email)
	b.signedIn(e, c)
	b.run("ready", chromedp.Reload(), chromedp.WaitVisible(css(`.deploy-btn:not([disabled])`)))
	require.Equal(t, "Ready to deploy", value[string](b, `document.querySelector(".pod-status").textContent`))
}

// Issue 25 item 5: the pod card and the receipts say the same true thing, decided from the
// server's pod JSON (paid_cents) and the receipts: a hold is "Card authorized (not charged
// yet)", and the card says "Paid" only beside a receipt.
func TestBrowserPaidOnlyWithAReceipt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("hold@example.com")

	b := newBrowserSession(t)
	b.signedIn(e, c)
	card := `document.querySelector(".pod").innerText`
	b.run("hold", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.deploy-btn:not([disabled])`)))
	require.Equal(t, "Card authorized (not charged yet)", value[string](b, `document.querySelector(".order-status").textContent`), value[string](b, card))
	require.NotContains(t, value[string](b, card), "Paid")
	require.True(t, value[bool](b, visible(`#no-receipts`)))

	// The order captured at Stripe but its payment not yet in the ledger (the hold's release
	// found it captured; the refund job records it): no receipt yet, so not "Paid" either.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE orders SET status = 'captured', captured_at = now() WHERE id = $1`, e.orderOf(podID))
	require.NoError(t, err)
	b.run("captured-unrecorded", chromedp.Reload(), poll(`(document.querySelector(".pod") || {dataset: {}}).dataset.orderStatus === "captured"`))
	require.Zero(t, value[int](b, `document.querySelectorAll("#receipts .receipt").length`))
	text := value[string](b, card)
	require.NotContains(t, text, "Paid", "no receipt: %s", value[string](b, `document.querySelector("#no-receipts").textContent`))
	require.NotContains(t, value[string](b, `document.querySelector("#no-receipts").textContent`), "No payments yet", text)

	// Deployed and captured: the card says Paid and the receipt is there.
	_, err = e.m.Pool.Exec(context.Background(), `UPDATE orders SET status = 'authorized', captured_at = NULL WHERE id = $1`, e.orderOf(podID))
	require.NoError(t, err)
	b.run("deploy", chromedp.Reload(), chromedp.WaitVisible(css(`.deploy-btn:not([disabled])`)), chromedp.Click(css(`.deploy-btn`)),
		poll(`document.querySelectorAll("#receipts .receipt").length === 1`), poll(`document.querySelector(".order-status").textContent === "Paid"`))
	require.False(t, value[bool](b, visible(`#no-receipts`)))
}

// Issue 25 item 5: back from an extension's checkout (/dashboard/?extended=…), the dashboard
// says the extension is being applied until the webhook has moved the pod's end, then that it
// is paid and when the pod now ends, with the card's end the new one.
func TestBrowserExtensionConfirmed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.runningPod("extended@example.com", 2)
	oldEnd := *e.rentalPod(c, podID).EndsAt
	sid, _ := e.openExtension(c, podID, 1)
	back := e.m.StripeSim.Session(sid).SuccessURL
	require.Contains(t, back, "/dashboard/?extended=")

	b := newBrowserSession(t)
	b.signedIn(e, c)
	msg := `document.querySelector("#extension-status")`
	// Not yet paid (the webhook has not arrived): being applied, and the old end.
	b.run("extension-pending", chromedp.Navigate(back), chromedp.WaitVisible(css(`.pod[data-status="running"]`)),
		poll(`!!document.querySelector("#extension-status") && document.querySelector("#extension-status").textContent !== ""`))
	require.Contains(t, value[string](b, msg+`.textContent`), "Extension being applied…")
	require.Equal(t, "status", value[string](b, msg+`.getAttribute("role")`))

	require.Equal(t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	e.eventually("extended", func() bool { return e.rentalPod(c, podID).EndsAt.After(oldEnd) })
	newEnd := *e.rentalPod(c, podID).EndsAt
	b.run("extension-paid", poll(msg+`.textContent.startsWith("Extension paid")`))
	text := value[string](b, msg+`.textContent`)
	stops := value[string](b, `[...document.querySelectorAll(".pod dt")].find(d => d.textContent === "Stops at").nextElementSibling.textContent`)
	require.Contains(t, text, "Extension paid: +1 h, your pod now ends at "+stops, text)
	require.Equal(t, customerTime(newEnd, time.Local), stops, "the card shows the new end")
	require.Contains(t, value[string](b, `document.querySelector(".pod-hours").textContent`), "3 (2 + 1 extended)")

	// Coming back to the same link later says it again, at once.
	b.run("extension-again", chromedp.Reload(), poll(msg+`.textContent.startsWith("Extension paid")`))
	b.phone("extension-paid-phone")
}

// Issue 25 item 5: the free trial shows no hourly price beside its $0.00 total, on the GPU step
// (its GPU and region menus) or the review: its hour is free. A paid plan's menus show them.
func TestBrowserFreeTrialShowsNoHourlyPrice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowserSession(t)
	b.run("get-started", chromedp.Navigate(e.url+"/get-started/"), chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), "trial-review@example.com"), chromedp.SendKeys(css(`#name`), "Ada"),
		chromedp.Click(css(`#next-1`)), chromedp.WaitVisible(css(`#plan-free`)))
	b.run("plan-free", chromedp.Click(css(`#plan-free`)), chromedp.Click(css(`#next-2`)), chromedp.WaitVisible(css(`#template-developer`)))
	b.run("template-free", chromedp.Click(css(`#template-developer`)), chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)))
	b.run("pod-free", poll(`document.querySelector("#total").textContent.includes("$0.00")`))
	pod := value[string](b, `document.querySelector("#step-4").innerText + "\n" + [...document.querySelectorAll("#step-4 option")].map(o => o.textContent).join("\n")`)
	require.NotRegexp(t, `/h\b|per hour|\$[1-9]|\$0\.[0-9][1-9]|\$0\.[1-9]`, pod, "the free trial's GPU step shows no hourly price beside its $0.00 total")
	b.run("review-free", chromedp.Click(css(`#next-4`)), chromedp.WaitVisible(css(`#pay`)),
		poll(`document.querySelector("#review-breakdown").innerText.includes("Free trial")`))
	review := value[string](b, `document.querySelector("#step-5").innerText`)
	require.Contains(t, value[string](b, `document.querySelector("#review-total").textContent`), "$0.00")
	require.NotRegexp(t, `/h\b|per hour|\$[1-9]|\$0\.[0-9][1-9]|\$0\.[1-9]`, review, "the free trial's review shows no hourly price")
	require.Contains(t, review, "free")
	b.run("plan-pro", chromedp.Click(css(`#step-5 button[data-goto="2"]`)), chromedp.WaitVisible(css(`#plan-pro`)),
		chromedp.Click(css(`#plan-pro`)), chromedp.Click(css(`#next-2`)), chromedp.WaitVisible(css(`#template-developer`)),
		chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)))
	require.Regexp(t, `— from \$\d+\.\d\d/h`, value[string](b, `document.querySelector("#gpu option").textContent`))
	require.Regexp(t, `— \$\d+\.\d\d/h`, value[string](b, `document.querySelector("#region option").textContent`))
	b.phone("review-free-phone")
}
