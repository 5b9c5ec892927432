package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever this machine has installed

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// inZone makes the browser's time zone zone, as a customer's computer set to it.
func (b *browser) inZone(zone string) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Emulation.setTimezoneOverride", map[string]string{"timezoneId": zone}, nil)
	})))
}

// customerTime is the one format customers read times in: the emails' (mail's when, in UTC)
// and the dashboard's, in the browser's zone with the zone named.
func customerTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST")
}

// factOf is a JavaScript expression: the text of the pod card's fact named label.
func factOf(label string) string {
	return `[...document.querySelectorAll(".pod dt")].find(d => d.textContent === ` + jsString(label) + `).nextElementSibling.textContent`
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

var customerTimeRE = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}, \d{2}:\d{2} [A-Z]{3,4}$`)

// Issue 25 item 6: the dashboard shows every time in the emails' format ("Mon 7 Dec 2026, 20:15
// UTC"), in the browser's own zone with the zone named ("Mon 7 Dec 2026, 21:15 CET").
func TestBrowserTimesInOneFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("times-hold@example.com")
	res := e.api(c).Pod(podID)
	require.Equal(t, http.StatusOK, res.Code, res.String())
	pt := res.Body
	require.NotNil(t, pt.DeployBy)
	require.False(t, pt.CreatedAt.IsZero())

	b := newBrowserSession(t)
	b.signedIn(e, c)
	for _, zone := range []string{"Europe/Paris", "America/New_York", "UTC"} {
		loc, err := time.LoadLocation(zone)
		require.NoError(t, err)
		b.inZone(zone)
		b.run("times-"+zone, chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.pod .hold-expiry`)))
		deployBy, ordered := value[string](b, factOf("Deploy by")), value[string](b, factOf("Ordered"))
		require.Regexp(t, customerTimeRE, deployBy, zone)
		require.Equal(t, customerTime(*pt.DeployBy, loc), deployBy, zone)
		require.Equal(t, customerTime(pt.CreatedAt, loc), ordered, zone)
	}

	// A running pod in Paris: its start, its end and its receipt.
	loc, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	c, podID = e.runningPod("times-running@example.com", 2)
	res = e.api(c).Pod(podID)
	require.Equal(t, http.StatusOK, res.Code, res.String())
	pt = res.Body
	require.NotNil(t, pt.StartedAt)
	require.NotNil(t, pt.EndsAt)
	b = newBrowserSession(t)
	b.signedIn(e, c)
	b.inZone("Europe/Paris")
	b.run("times-running", chromedp.Navigate(e.url+"/dashboard/"), chromedp.WaitVisible(css(`.pod[data-status="running"]`)),
		poll(`document.querySelectorAll("#receipts .receipt").length > 0`))
	require.Equal(t, customerTime(*pt.StartedAt, loc), value[string](b, factOf("Started")))
	require.Equal(t, customerTime(*pt.EndsAt, loc), value[string](b, factOf("Stops at")))
	paid := value[string](b, `document.querySelector("#receipts .receipt .receipt-meta span").textContent`)
	require.Regexp(t, `^Paid (Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} CES?T$`, paid)
	b.phone("times-running-phone")
}
