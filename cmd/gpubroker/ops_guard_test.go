package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker/jobs"
	"gpubroker/worker"
)

// opsSend sends an ops request with the harness's admin credentials, the body as text/plain
// (what a cross-site form with enctype=text/plain posts) and the Origin given ("" for none).
func (e *env) opsSend(method, path, body, origin string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.SetBasicAuth("admin", "ops-secret")
	req.Header.Set("Content-Type", "text/plain")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp
}

// Issue 19.2: a form post from any site, in a browser holding the ops credentials, cancelled
// River jobs (River UI reads any body as JSON). Every non-GET under /ops/ now needs the site's
// own Origin, and no ops page may be framed.
func TestRiverUIRefusesCrossSiteActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	res, err := e.m.River.Insert(ctx, jobs.ReleaseHoldArgs{OrderID: "00000000-0000-0000-0000-000000000001"}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	id := strconv.FormatInt(res.Job.ID, 10)
	cancel := `{"ids":["` + id + `"]}`
	state := func() rivertype.JobState {
		j, err := e.m.River.JobGet(ctx, res.Job.ID)
		require.NoError(t, err)
		return j.State
	}

	for _, origin := range []string{"https://evil.example", "", "null"} {
		resp := e.opsSend("POST", "/ops/riverui/api/jobs/cancel", cancel, origin)
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "Origin %q", origin)
		require.Equal(t, rivertype.JobStateScheduled, state(), "Origin %q cancelled the job", origin)
	}
	resp := e.opsSend("POST", "/ops/riverui/api/jobs/cancel", cancel, e.url)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, rivertype.JobStateCancelled, state())

	for _, path := range []string{"/ops/", "/ops/riverui/", "/ops/riverui/api/jobs?state=cancelled", "/ops/funnel"} {
		resp := e.opsSend("GET", path, "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}
}

// Issue 19.6: forty wrong ops passwords were forty 401s, unthrottled and unrecorded.
func TestOpsPasswordGuessingIsThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	codes := map[int]int{}
	for range 40 {
		req, _ := http.NewRequest("GET", e.url+"/ops/riverui/api/jobs", nil)
		req.SetBasicAuth("admin", "guess")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	require.Greater(t, codes[http.StatusTooManyRequests], 30, "guesses were not throttled: %v", codes)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'ops.auth_failed'`), "one aggregated audit event")
}

// button is a JavaScript expression: the first <button> whose text or title is label.
func button(label string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("button")].find(b => b.textContent.trim() === %q || b.title === %q)`, label, label)
}

// click waits for a button and clicks it, as a person does.
func click(label string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := poll(`(() => { const b = `+button(label)+`; return !!b && !b.disabled })()`)(ctx, t); err != nil {
			return err
		}
		_, err := js(button(label)+`.click()`)(ctx, t)
		return err
	})
}

// Issue 19.2: the Origin rule must not break River UI itself. Its own page, in Chromium, still
// cancels a job, retries a discarded one and pauses a queue: the browser sends the site's
// Origin on every one of those requests, and none carries a content type we could insist on.
func TestRiverUIStillWorksInChromium(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := newBrowserSession(t)
	ctx := context.Background()
	insert := func(orderID string) int64 { // release_hold jobs are unique by order
		res, err := e.m.River.Insert(ctx, jobs.ReleaseHoldArgs{OrderID: orderID}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		return res.Job.ID
	}
	state := func(id int64) rivertype.JobState {
		j, err := e.m.River.JobGet(ctx, id)
		require.NoError(t, err)
		return j.State
	}
	toCancel := insert("00000000-0000-0000-0000-000000000002")
	toRetry := insert("00000000-0000-0000-0000-000000000003")
	_, err := e.m.Pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now(), errors = ARRAY['{"at":"2026-12-07T00:00:00Z","attempt":1,"error":"boom","trace":""}'::jsonb] WHERE id = $1`, toRetry)
	require.NoError(t, err)

	// The operator's browser sends the ops credentials with every request, as it does once
	// they are typed into its basic-auth prompt.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:ops-secret"))
	b.run("riverui-credentials", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		return err
	}))
	ui := e.url + worker.RiverUIPrefix

	b.run("riverui-cancel", chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", ui, toCancel)), click("Cancel"))
	e.eventually("the job cancelled from River UI", func() bool { return state(toCancel) == rivertype.JobStateCancelled })

	b.run("riverui-retry", chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", ui, toRetry)), click("Retry"))
	e.eventually("the discarded job retried from River UI", func() bool { return state(toRetry) != rivertype.JobStateDiscarded })

	paused := func() bool {
		var n int
		require.NoError(t, e.m.Pool.QueryRow(ctx, `SELECT count(*) FROM river_queue WHERE name = 'default' AND paused_at IS NOT NULL`).Scan(&n))
		return n == 1
	}
	require.False(t, paused())
	b.run("riverui-pause", chromedp.Navigate(ui+"/queues/default"), click("Pause"))
	e.eventually("the queue paused from River UI", paused)

	var actions []string
	rows, err := e.m.Pool.Query(ctx, `SELECT detail->>'path' FROM audit_events WHERE action = 'ops.riverui_action' ORDER BY id`)
	require.NoError(t, err)
	actions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"/ops/riverui/api/jobs/cancel", "/ops/riverui/api/jobs/retry", "/ops/riverui/api/queues/default/pause"}, actions)
}
