package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/site"
)

// proPlan is the catalog's paid self-serve plan (Pro) and the cheapest GPU hour it allows.
func proPlan(t *testing.T) (gpubroker.Plan, int64) {
	t.Helper()
	cat := catalogOf(t)
	var pro gpubroker.Plan
	for _, p := range cat.Plans {
		if p.PaymentRequired && p.FeeCents > 0 {
			pro = p
			break
		}
	}
	require.NotEmpty(t, pro.ID, "a paid plan with a fee")
	var low int64
	for _, g := range cat.GPUs {
		for _, r := range g.Regions {
			if low == 0 || r.HourlyCents < low {
				low = r.HourlyCents
			}
		}
	}
	return pro, low
}

// catalogOf is the catalog the site renders and the API charges (site/data).
func catalogOf(t *testing.T) *gpubroker.Catalog {
	t.Helper()
	cat, err := site.Catalog()
	require.NoError(t, err)
	return cat
}

// usd formats cents as the site does ($49, $0.59).
func usd(cents int64, whole bool) string {
	if whole && cents%100 == 0 {
		return fmt.Sprintf("$%d", cents/100)
	}
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}

// Issue 25 item 3: wherever an hourly price appears, the plan fee is beside it (the hero, the
// GPU table on the home page and /gpus/, its Rent links), with a first order's total; the GPU
// menu's "from" price is the one preselected; the exact total is called a total.
func TestBrowserAllInPrice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	pro, low := proPlan(t)
	allIn := fmt.Sprintf("%s: %s for %d days + GPU time from %s/h", pro.Name, usd(pro.FeeCents, true), pro.FeePeriodDays, usd(low, false))

	b := newBrowserSession(t)
	b.run("home", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(css(`#hero-title`)))
	hero := value[string](b, `document.querySelector(".hero .note").textContent`)
	require.Contains(t, hero, allIn, "the hero's price")
	require.Contains(t, value[string](b, `document.querySelector("#prices").innerText`), allIn, "the home page's GPU prices")

	b.run("gpus", chromedp.Navigate(e.url+"/gpus/"), chromedp.WaitVisible(css(`#gpu-prices`)))
	page := value[string](b, `document.querySelector("main").innerText`)
	require.Contains(t, page, allIn, "/gpus/")
	// A first order's total, from the catalog: 3 hours of an A100 in US East on Pro.
	a100 := catalogOf(t).GPUs[0]
	for _, g := range catalogOf(t).GPUs {
		if g.GPU == "a100" {
			a100 = g
		}
	}
	var rate int64
	for _, r := range a100.Regions {
		if r.Region == "us-east" {
			rate = r.HourlyCents
		}
	}
	require.NotZero(t, rate)
	first := fmt.Sprintf("%s + 3 × %s = %s", usd(pro.FeeCents, false), usd(rate, false), usd(pro.FeeCents+3*rate, false))
	require.Contains(t, page, first, "a first order's total")
	rent := value[string](b, `[...document.querySelectorAll("#gpu-prices a")].map(a => a.getAttribute("aria-label") + " | " + a.closest("td").innerText).join("\n")`)
	for _, line := range strings.Split(rent, "\n") {
		require.Contains(t, line, usd(pro.FeeCents, true), "a Rent link says the plan fee: %s", line)
	}

	// The GPU menu: each GPU's "from" price is the price of the region it preselects.
	b.run("get-started", chromedp.Navigate(e.url+"/get-started/?plan=pro&template=developer"), chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), "all-in@example.com"), chromedp.SendKeys(css(`#name`), "Ada"),
		chromedp.Click(css(`#next-1`)), chromedp.WaitVisible(css(`#plan-pro`)), chromedp.Click(css(`#next-2`)),
		chromedp.WaitVisible(css(`#template-developer`)), chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)))
	for _, g := range catalogOf(t).GPUs {
		b.run("gpu-"+g.GPU, choose(`#gpu`, g.GPU))
		opt := value[string](b, `document.querySelector("#gpu").selectedOptions[0].textContent`)
		reg := value[string](b, `document.querySelector("#region").selectedOptions[0].textContent`)
		from := opt[strings.LastIndex(opt, "from ")+len("from "):]
		require.True(t, strings.HasSuffix(reg, "— "+from), "%q preselects %q", opt, reg)
	}
	b.run("total", poll(`document.querySelector("#total").textContent.startsWith("$")`))
	note := value[string](b, `document.querySelector("#price-note").textContent`)
	require.NotContains(t, note, "for your information", "the exact total is no estimate: %s", note)
	require.Contains(t, note, "total")
	b.phone("all-in-phone")
}

// Issue 25, "Pricing as plain as the peers'": where prices appear, the site says it bills by
// the minute and refunds unused minutes (rental.go's rule, the refund policy's).
func TestBrowserBilledByTheMinute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const rule = "billed by the minute, unused minutes refunded"
	b := newBrowserSession(t)
	for _, p := range []struct{ path, sel string }{
		{"/", ".hero .note"}, {"/", "#prices"}, {"/", "#plans"}, {"/gpus/", "main"}, {"/plans/", "main"},
	} {
		b.run("page"+p.path, chromedp.Navigate(e.url+p.path), chromedp.WaitVisible(css(`h1`)))
		require.Contains(t, strings.ToLower(value[string](b, fmt.Sprintf(`document.querySelector(%q).innerText`, p.sel))), rule, "%s %s", p.path, p.sel)
	}
	b.run("get-started", chromedp.Navigate(e.url+"/get-started/?plan=pro&template=developer"), chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), "minute@example.com"), chromedp.SendKeys(css(`#name`), "Ada"),
		chromedp.Click(css(`#next-1`)), chromedp.WaitVisible(css(`#plan-pro`)), chromedp.Click(css(`#next-2`)),
		chromedp.WaitVisible(css(`#template-developer`)), chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)))
	require.Contains(t, strings.ToLower(value[string](b, `document.querySelector("#step-4").innerText`)), rule, "the GPU step")
	b.run("review", chromedp.Click(css(`#next-4`)), chromedp.WaitVisible(css(`#pay`)))
	require.Contains(t, strings.ToLower(value[string](b, `document.querySelector("#step-5").innerText`)), rule, "the review")
}

// Issue 25 item 4: a signed-in customer with Pro active and a key on the account reads their own
// order form: no "we create your account" or activation link, the plan step says Pro is active
// (the quote charges no fee), and the review names the account's key that goes onto the pod.
func TestBrowserSignedInOrderForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const email = "returning@example.com"
	c, _ := e.runningPod(email, 1)
	key, _ := newKey(t, "ada@laptop")
	require.Equal(t, http.StatusCreated, e.api(c).AddSSHKey("laptop", key).Code)
	pro, _ := proPlan(t)

	b := newBrowserSession(t)
	b.signedIn(e, c)
	b.run("get-started", chromedp.Navigate(e.url+"/get-started/"), chromedp.WaitVisible(css(`#email`)),
		poll(`document.querySelector("#email").value === "`+email+`"`))
	you := value[string](b, `document.querySelector("main").innerText`)
	require.NotContains(t, you, "activation link", you)
	require.NotContains(t, you, "We create your account", you)
	require.NotContains(t, you, "Your account is made", you)

	b.run("plan", chromedp.Click(css(`#next-1`)), chromedp.WaitVisible(css(`#plan-pro`)),
		poll(`document.querySelector("label.choice:has(#plan-pro)").innerText.includes("active")`))
	card := value[string](b, `document.querySelector("label.choice:has(#plan-pro)").innerText`)
	require.NotContains(t, card, usd(pro.FeeCents, true), "Pro is active: its fee is not charged again: %s", card)
	require.Contains(t, card, "Pro active until")

	b.run("gpu", chromedp.Click(css(`#plan-pro`)), chromedp.Click(css(`#next-2`)), chromedp.WaitVisible(css(`#template-developer`)),
		chromedp.Click(css(`#template-developer`)), chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)),
		chromedp.Click(css(`#next-4`)), chromedp.WaitVisible(css(`#pay`)), poll(`document.querySelector("#review-total").textContent.startsWith("$")`))
	review := value[string](b, `document.querySelector("#step-5").innerText`)
	require.NotContains(t, value[string](b, `document.querySelector("#review-ssh_public_key").textContent`), "None", review)
	require.Contains(t, value[string](b, `document.querySelector("#review-ssh_public_key").textContent`), "laptop", review)
	require.NotContains(t, value[string](b, `document.querySelector("#review-breakdown").innerText`), usd(pro.FeeCents, false), "no fee in the total")
	require.NotContains(t, strings.ToLower(value[string](b, `document.querySelector("#pay-note").textContent`)), "activat", review)
	b.phone("signed-in-review-phone")
}
