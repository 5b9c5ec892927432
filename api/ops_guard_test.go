package api

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// opsAs sends an ops request from a client address with a password ("" for none).
func (ts *testServer) opsAs(ip, pass string) *httptest.ResponseRecorder {
	h := http.Header{"X-Forwarded-For": {ip}}
	if pass != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(":"+pass)))
	}
	return ts.do("GET", "/ops/funnel", nil, h)
}

// Issue 19.6: forty wrong passwords were forty 401s. Now guessing is throttled per client
// address with a backoff that never locks the right password out for long, never touches other
// addresses, and is recorded as one aggregated audit event per client per window.
func TestOpsAuthThrottledPerClient(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	ts.s.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ts.s.TrustedProxyHops = 1
	const attacker, ops = "203.0.113.9", "198.51.100.4"

	codes := map[int]int{}
	for range 40 {
		codes[ts.opsAs(attacker, "guess").Code]++
	}
	require.Equal(t, opsFreeFailures+1, codes[http.StatusUnauthorized], "the free failures and the one that closed the door were checked: %v", codes)
	require.Equal(t, 40-opsFreeFailures-1, codes[http.StatusTooManyRequests], "%v", codes)
	w := ts.opsAs(attacker, "ops-secret")
	require.Equal(t, http.StatusTooManyRequests, w.Code, "during the backoff no password is looked at, the right one included")
	require.NotEmpty(t, w.Header().Get("Retry-After"))

	// Another address is never affected.
	require.Equal(t, http.StatusOK, ts.opsAs(ops, "ops-secret").Code)

	// Each failure past the free ones doubles the backoff, up to opsMaxBackoff: the right
	// password works from the attacker's address once it has passed.
	advance(opsBaseBackoff)
	require.Equal(t, http.StatusUnauthorized, ts.opsAs(attacker, "guess").Code)
	retry, err := strconv.Atoi(ts.opsAs(attacker, "guess").Header().Get("Retry-After"))
	require.NoError(t, err)
	require.Equal(t, 2, retry, "the second backoff is twice the first")
	advance(opsMaxBackoff)
	require.Equal(t, http.StatusOK, ts.opsAs(attacker, "ops-secret").Code)
	require.Equal(t, http.StatusUnauthorized, ts.opsAs(attacker, "guess").Code, "a success starts the count again")

	// A request without credentials (a browser's first) is not a guess.
	require.Equal(t, http.StatusUnauthorized, ts.opsAs(ops, "").Code)

	// One audit event for the attacker's window, counting every failure checked.
	events := auditRows(t, ts.pool, "ops.auth_failed")
	require.Len(t, events, 1)
	require.Equal(t, attacker, events[0].Detail["client"])
	require.Equal(t, float64(opsFreeFailures+1+1+1), events[0].Detail["failures"])
	// A new window, a new event.
	advance(opsAuthWindow)
	require.Equal(t, http.StatusUnauthorized, ts.opsAs(attacker, "guess").Code)
	events = auditRows(t, ts.pool, "ops.auth_failed")
	require.Len(t, events, 2)
	require.Equal(t, float64(1), events[1].Detail["failures"])
}

// Issue 19.2: every non-GET ops request needs the site's Origin; every ops page refuses to be
// framed.
func TestOpsRefusesForeignOrigins(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	reached := 0
	h := ts.s.Ops(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	send := func(method, origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/ops/riverui/api/jobs/cancel", nil)
		r.SetBasicAuth("", "ops-secret")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, origin := range []string{"", "https://evil.example", "null", testPublicURL + ".evil.example"} {
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			w := send(m, origin)
			require.Equal(t, http.StatusForbidden, w.Code, "%s with Origin %q", m, origin)
		}
	}
	require.Zero(t, reached)
	require.Equal(t, http.StatusOK, send("POST", testPublicURL).Code)
	require.Equal(t, http.StatusOK, send("GET", "").Code)
	require.Equal(t, 2, reached)

	for _, path := range []string{"/ops/", "/ops/funnel", "/ops/orders?q=x", "/metrics"} {
		w := ts.do("GET", path, nil, adminHeader())
		require.Equal(t, http.StatusOK, w.Code, path)
		require.Equal(t, "DENY", w.Header().Get("X-Frame-Options"), path)
		require.Contains(t, w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}
}
