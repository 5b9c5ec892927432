package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker/jobs"
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
