package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/api/apitest"
)

// axeCoreVersion is the axe-core release the pages are checked with: scripts/deps.sh's
// AXE_CORE_VERSION, which installs it into .data/axe-core/ (make test runs it first).
const axeCoreVersion = "4.14.1"

// axeTags are the rule sets every page passes: WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best
// practices.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"}

// axeViolation is one failed axe rule on a page, with the elements that fail it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  json.RawMessage `json:"target"`
		Summary string          `json:"summary"`
	} `json:"nodes"`
}

// axeSource is axe.min.js of the pinned release, or the test fails saying how to install it:
// a missing checker must not pass as a page without violations.
func axeSource(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("AXE_CORE_DIR")
	if dir == "" {
		dir, _ = filepath.Abs("../../.data/axe-core/node_modules/axe-core")
	}
	install := fmt.Sprintf("run scripts/deps.sh test (make test does), which installs axe-core@%s into .data/axe-core/", axeCoreVersion)
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatalf("axe-core is not installed in %s: %s", dir, install)
	}
	var pkg struct{ Version string }
	require.NoError(t, json.Unmarshal(b, &pkg))
	if pkg.Version != axeCoreVersion {
		t.Fatalf("axe-core %s is installed in %s, the test pins %s: %s", pkg.Version, dir, axeCoreVersion, install)
	}
	src, err := os.ReadFile(filepath.Join(dir, "axe.min.js"))
	require.NoError(t, err)
	return string(src)
}

// sitePages are the URL paths of every page of the built site: each index.html, and the 404
// page at a path that has none.
func sitePages(t *testing.T) []string {
	t.Helper()
	dir := os.Getenv("SITE_DIR")
	if dir == "" {
		dir, _ = filepath.Abs("../../site/public")
	}
	var pages []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Name() == "index.html":
			pages = append(pages, "/"+strings.TrimSuffix(filepath.ToSlash(rel), "index.html"))
		case rel == "404.html":
			pages = append(pages, "/no-such-page/")
		}
		return nil
	}), "the built site (make site)")
	require.Greater(t, len(pages), 10, "the pages of the built site in %s", dir)
	return pages
}

// axeCheck is one page in one state: how to get there in a browser at a given size, and what
// shows it is there.
type axeCheck struct {
	name  string
	setup func(b *browser) // signs the browser in, or not
	steps []chromedp.Action[chromedp.Void]
}

// axe runs the rules in the page as it is now and returns each violation as a line: the rule,
// its impact and help, and the selectors of the elements that fail it.
func (b *browser) axe(src string) []string {
	b.t.Helper()
	opts, _ := json.Marshal(map[string]any{"runOnly": axeTags, "resultTypes": []string{"violations"}})
	var got []axeViolation
	err := chromedp.Do(b.ctx,
		// Evaluated through DevTools, which the pages' Content-Security-Policy does not govern.
		js(src+"\n;0"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			v, err := chromedp.Evaluate[[]axeViolation](`axe.run(document, `+string(opts)+`).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
				nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary}))})))`, chromedp.EvalAwaitPromise)(ctx, tg)
			got = v
			return err
		}))
	require.NoError(b.t, err, "axe.run")
	var out []string
	for _, v := range got {
		var targets []string
		for _, n := range v.Nodes {
			targets = append(targets, string(n.Target)+" ("+strings.ReplaceAll(n.Summary, "\n", " ")+")")
		}
		out = append(out, fmt.Sprintf("%s [%s] %s: %s", v.ID, v.Impact, v.Help, strings.Join(targets, "; ")))
	}
	return out
}

// clearCookies signs the browser out of every site.
func clearCookies() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Network.clearBrowserCookies", nil, nil)
	})
}

// opened is a JavaScript condition that presses button until dialog is open: the dashboard
// redraws its pods while it polls, and a press on a card it just replaced opens nothing.
func opened(dialog, button string) string {
	return fmt.Sprintf(`(() => { const d = document.querySelector(%q), b = document.querySelector(%q); if (!d.open && b) b.click(); return d.open })()`, dialog, button)
}

// settled waits until the page has loaded and its scripts have answered (the header's GET
// /api/me, a page's own first call), so the rules see what a visitor sees.
func settled(ready string) []chromedp.Action[chromedp.Void] {
	if ready == "" {
		ready = "true"
	}
	return []chromedp.Action[chromedp.Void]{poll(`document.readyState === "complete" && (` + ready + `)`), chromedp.Sleep(400 * time.Millisecond)}
}

// Issue 25: every page of the site, and the signed-in pages in their main states, pass axe-core's
// WCAG 2.2 AA and best-practice rules with no violation, at desktop and phone sizes.
func TestBrowserAxe(t *testing.T) {
	t.Parallel()
	src := axeSource(t)
	pages := sitePages(t)
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})

	// A page of the site without scripts, so that none signs the browser back in meanwhile.
	signedOut := func(b *browser) {
		require.NoError(t, chromedp.Do(b.ctx, chromedp.Navigate(e.url+"/robots.txt"), js(`localStorage.clear(); sessionStorage.clear()`), clearCookies()))
	}
	var checks []axeCheck
	for _, p := range pages {
		ready := ""
		switch p {
		case "/dashboard/":
			ready = visible("#signed-out")
		case "/payment/success/":
			ready = `document.querySelector("#verify-status").textContent !== ""`
		}
		// Every FAQ answer open, so its text is checked too.
		steps := append(append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + p)}, settled(ready)...), js(`document.querySelectorAll("details").forEach(d => d.open = true)`))
		checks = append(checks, axeCheck{name: p, setup: signedOut, steps: steps})
	}

	// axe cannot tell the contrast of text on a gradient (it reports it as "needs review"), so
	// the hero is checked again on the gradient's lightest colour alone, its worst case.
	checks = append(checks, axeCheck{name: "/ hero on its gradient's lightest colour", setup: signedOut, steps: append(append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/")}, settled("")...),
		js(`(() => { const h = document.querySelector(".hero"); h.style.background = getComputedStyle(h).backgroundImage.match(/rgba?\([^)]*\)/)[0] })()`))})

	// Forms sent empty: their messages beside the fields; the sign-in link sent.
	checks = append(checks,
		axeCheck{name: "contact, errors", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/contact/"), chromedp.WaitVisible(css(`#contact-submit`)),
			chromedp.Click(css(`#contact-submit`))}, settled(`!document.querySelector("#contact-email-error").hidden`)...)},
		axeCheck{name: "get-started, errors", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/get-started/"), chromedp.WaitVisible(css(`#next-1`)),
			chromedp.Click(css(`#next-1`))}, settled(`!document.querySelector("#email-error").hidden`)...)},
		axeCheck{name: "login, error", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/login/"), chromedp.WaitVisible(css(`#login-btn`)),
			chromedp.Click(css(`#login-btn`))}, settled(`!document.querySelector("#login-email-error").hidden`)...)},
		axeCheck{name: "login, link sent", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/login/"), chromedp.WaitVisible(css(`#login-btn`)),
			chromedp.SendKeys(css(`#login-email`), "axe-links@example.com"), chromedp.Click(css(`#login-btn`))}, settled(`!document.querySelector("#login-status").hidden`)...)},
	)

	// Links from emails and Stripe, with what they carry.
	payer := newBrowser()
	sid, _ := e.paid(payer, "axe-links@example.com")
	activation := e.activationToken("axe-links@example.com", 1)
	checks = append(checks,
		axeCheck{name: "activate with a token", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/activate/?token=" + activation)}, settled(visible("#activate-btn"))...)},
		axeCheck{name: "payment success", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/payment/success/?session_id=" + sid)},
			settled(`document.querySelector("#verify-status").dataset.state === "authorized"`)...)},
	)

	// The order form's steps, as a visitor fills it in.
	wizard := []chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/get-started/"), chromedp.WaitVisible(css(`#email`)),
		js(`document.querySelector("#email").value = "axe@example.com"; document.querySelector("#name").value = "Ada"`), chromedp.Click(css(`#next-1`)), chromedp.WaitVisible(css(`#plan-pro`))}
	checks = append(checks, axeCheck{name: "get-started plan", setup: signedOut, steps: append(wizard[:len(wizard):len(wizard)], settled("")...)})
	wizard = append(wizard, chromedp.Click(css(`#plan-pro`)), chromedp.Click(css(`#next-2`)), chromedp.WaitVisible(css(`#template-developer`)))
	checks = append(checks, axeCheck{name: "get-started template", setup: signedOut, steps: append(wizard[:len(wizard):len(wizard)], settled("")...)})
	wizard = append(wizard, chromedp.Click(css(`#template-developer`)), chromedp.Click(css(`#next-3`)), chromedp.WaitVisible(css(`#gpu`)))
	checks = append(checks, axeCheck{name: "get-started GPU", setup: signedOut, steps: append(wizard[:len(wizard):len(wizard)], settled(`document.querySelector("#total").textContent !== "—"`)...)})
	wizard = append(wizard, poll(`document.querySelector("#total").textContent !== "—"`), chromedp.Click(css(`#next-4`)), chromedp.WaitVisible(css(`#pay`)))
	checks = append(checks, axeCheck{name: "get-started review", setup: signedOut, steps: append(wizard[:len(wizard):len(wizard)], settled(`document.querySelector("#pay").textContent.includes("$")`)...)})

	// Signed in: a paid pod whose email is not confirmed yet, one waiting for Deploy, one
	// running, one terminated, and the account's menu, dialogs and deletion link.
	as := func(c *http.Client) func(b *browser) {
		return func(b *browser) { signedOut(b); b.signedIn(e, c) }
	}
	dashboard := func(ready string, more ...chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
		return append(append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/dashboard/")}, more...), settled(ready)...)
	}
	pending := newBrowser()
	e.paid(pending, "axe-pending@example.com")
	waiting, _ := e.signUp("axe-waiting@example.com")
	running, _ := e.runningPod("axe-running@example.com", 2)
	ended, endedPod := e.runningPod("axe-ended@example.com", 2)
	e.ranFor(endedPod, tenMinutesIn)
	require.Equal(t, http.StatusAccepted, e.api(ended).Terminate(endedPod).Code)
	e.waitPod(ended, endedPod, "terminated")
	e.eventually("refunded", func() bool { p := e.rentalPod(ended, endedPod); return p.RefundedCents != nil && *p.RefundedCents > 0 })
	res := apitest.Do[api.Status](e.api(ended), "DELETE", "/api/me", nil)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	var mails []api.DevEmail
	e.eventually("deletion email", func() bool {
		mails = e.mails("axe-ended@example.com")
		return len(mails) > 0 && mails[0].Kind == "account_deletion"
	})
	deletion := tokenOf(t, link(t, mails[0], "/account/delete/"))
	checks = append(checks,
		axeCheck{name: "dashboard, email not confirmed", setup: as(pending), steps: dashboard(visible(`#pending-banner`) + ` && !!document.querySelector(".deploy-btn[disabled]")`)},
		axeCheck{name: "dashboard, waiting for Deploy", setup: as(waiting), steps: dashboard(`!!document.querySelector(".deploy-btn:not([disabled])") && document.querySelectorAll("#ssh-keys .key, #no-keys:not([hidden])").length > 0`)},
		axeCheck{name: "dashboard, running", setup: as(running), steps: dashboard(`!!document.querySelector('.pod[data-status="running"] .conn-jupyter') && document.querySelectorAll("#receipts .receipt").length === 1 && /\$/.test((document.querySelector(".extend-btn") || {}).textContent)`)},
		axeCheck{name: "dashboard, terminate dialog", setup: as(running), steps: dashboard(opened("#terminate-dialog", ".terminate-btn"))},
		axeCheck{name: "dashboard, terminated", setup: as(ended), steps: dashboard(`!!document.querySelector('.pod[data-status="terminated"]') && document.querySelectorAll("#receipts .receipt").length >= 1`)},
		axeCheck{name: "dashboard, delete dialog", setup: as(ended), steps: dashboard(opened("#delete-dialog", "#delete-account-btn"))},
		axeCheck{name: "account menu", setup: as(running), steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/plans/"),
			// The header asks who is signed in only in a browser that has been (lib.js maybeSignedIn).
			// A second navigation, not a reload: chromedp's Reload does not wait for the new
			// page, and an evaluation could meet the old one's destroyed context (CI: "Cannot
			// find context with specified id").
			js(`localStorage.setItem("gb-signed-in", "1")`), chromedp.Navigate(e.url + "/plans/"), chromedp.WaitVisible(css(`#account-menu-btn`)),
			chromedp.Click(css(`#account-menu-btn`))}, settled(visible(`#account-menu-logout`))...)},
		axeCheck{name: "account deletion link", setup: signedOut, steps: append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.url + "/account/delete/?token=" + deletion)},
			settled(visible(`#delete-confirm-btn`))...)},
	)

	// Two windows: a desktop's and a phone's (its pixels doubled, as the other phone checks).
	axeSizes := []struct {
		name          string
		width, height int64
		scale         float64
	}{{"desktop", 1350, 940, 1}, {"phone", 390, 844, 2}}
	b := newBrowserSession(t)
	start := time.Now()
	var failures []string
	for _, size := range axeSizes {
		for _, c := range checks {
			c.setup(b)
			name := size.name + " " + c.name
			b.run("axe "+name, append([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(size.width, size.height, chromedp.EmulateScale(size.scale))}, c.steps...)...)
			for _, v := range b.axe(src) {
				failures = append(failures, name+": "+v)
			}
		}
	}
	t.Logf("axe-core %s: %d checks at %d sizes in %s", axeCoreVersion, len(checks), len(axeSizes), time.Since(start).Round(time.Second))
	if len(failures) > 0 {
		t.Fatalf("%d axe-core violations (%s):\n%s", len(failures), strings.Join(axeTags, ", "), strings.Join(failures, "\n"))
	}
}
