package main

import (
	"testing"

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
