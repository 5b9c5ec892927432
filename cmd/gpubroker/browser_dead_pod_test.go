package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"gpubroker/jobs"
)

// signedIn gives the browser the session of http client c (its cookies for the site).
func (b *browser) signedIn(e *env, c *http.Client) {
	b.t.Helper()
	u, err := url.Parse(e.url)
	require.NoError(b.t, err)
	cookies := c.Jar.Cookies(u)
	require.NotEmpty(b.t, cookies, "signed in")
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		type cookie struct {
			Name  string `json:"name"`
			Value string `json:"value"`
			URL   string `json:"url"`
		}
		for _, ck := range cookies {
			if err := tg.Call(ctx, "Network.setCookie", cookie{Name: ck.Name, Value: ck.Value, URL: e.url + "/"}, nil); err != nil {
				return err
			}
		}
		return nil
	})))
}

// Issue 25 item 1: a pod that ran and then died at its provider says so on the dashboard (it
// stopped working, its unused minutes are refunded), never "This pod could not be started.";
// without the pod's own error the card still says it stopped working.
func TestBrowserDeadPodSaysItStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("dead-pod@example.com")
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")
	var instanceID string
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT instance_id FROM pods WHERE id = $1`, podID).Scan(&instanceID))
	require.True(t, e.m.Sim.Fail(instanceID, "the host failed"))
	for range 2 { // the second dead check in a row fails the pod
		n := e.count(`SELECT count(*) FROM river_job WHERE kind = 'pod_health' AND state = 'completed'`)
		_, err := e.m.River.Insert(context.Background(), jobs.PodHealthArgs{}, nil)
		require.NoError(t, err)
		e.eventually("health pass", func() bool {
			return e.count(`SELECT count(*) FROM river_job WHERE kind = 'pod_health' AND state = 'completed'`) == n+1
		})
	}
	require.Equal(t, "failed", e.pod(c, podID).Status)

	b := newBrowserSession(t)
	b.signedIn(e, c)
	card := `document.querySelector(".pod").innerText`
	b.run("dead-pod", chromedp.Navigate(e.url+"/dashboard/"), poll(`(document.querySelector(".pod") || {dataset: {}}).dataset.status === "failed"`))
	text := value[string](b, card)
	require.Contains(t, value[string](b, `document.querySelector(".pod-error").textContent`), "Your pod stopped working", text)
	require.Contains(t, text, "every paid minute it did not use is refunded")
	require.NotContains(t, text, "could not be started")
	require.NotContains(t, text, "could not start")
	require.Zero(t, value[int](b, `document.querySelectorAll(".deploy-btn, .deploy-reason").length`), text)

	// Without the pod's own words, the card still says what happened to a pod that had started.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE pods SET error = NULL WHERE id = $1`, podID)
	require.NoError(t, err)
	b.run("dead-pod-no-error", chromedp.Reload(), poll(`(document.querySelector(".pod") || {dataset: {}}).dataset.status === "failed"`))
	text = value[string](b, card)
	require.Contains(t, value[string](b, `document.querySelector(".pod-error").textContent`), "stopped working", text)
	require.Contains(t, text, "minute it did not use is refunded")
	require.NotContains(t, text, "could not")
}
