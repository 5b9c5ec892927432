package api

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func pageView(ts *testServer, body, ua string) *http.Response {
	h := http.Header{"Origin": {testPublicURL}, "User-Agent": {ua}}
	return ts.do("POST", "/api/pageviews", []byte(body), h).Result()
}

const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

func views(t *testing.T, ts *testServer, path string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, ts.pool.QueryRow(context.Background(), `SELECT COALESCE(sum(n), 0) FROM page_views WHERE path = $1`, path).Scan(&n))
	return n
}

// POST /api/pageviews counts a view of a known page (204), sets no cookie, refuses unknown
// paths (422) and counts nothing for bots.
func TestPageViews(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	r := pageView(ts, `{"path":"/"}`, browserUA)
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Empty(t, r.Header.Values("Set-Cookie"))
	r = pageView(ts, `{"path":"/plans/"}`, browserUA)
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Equal(t, int64(1), views(t, ts, "/"))
	require.Equal(t, int64(1), views(t, ts, "/plans/"))

	for _, p := range []string{`{"path":"/nope/"}`, `{"path":"/dashboard/"}`, `{"path":"/plans"}`, `{"path":"/?utm=x"}`, `{"path":""}`, `{}`} {
		w := ts.do("POST", "/api/pageviews", []byte(p), http.Header{"Origin": {testPublicURL}, "User-Agent": {browserUA}})
		require.Equal(t, http.StatusUnprocessableEntity, w.Code, p)
		checkAnswer(t, p, w)
	}
	r = pageView(ts, `{"path":"/"}`, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
	require.Equal(t, http.StatusNoContent, r.StatusCode)
	require.Equal(t, int64(1), views(t, ts, "/"), "a bot is not counted")

	var cols int
	require.NoError(t, ts.pool.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_name = 'page_views'`).Scan(&cols))
	require.Equal(t, 3, cols, "day, path, n: nothing about the visitor")
}

// A flood from one address is refused in memory (429) before it reaches the database.
func TestPageViewsFlood(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.s.NoRateLimits = false
	limited := 0
	for range pageViewLimit + 10 {
		if pageView(ts, `{"path":"/gpus/"}`, browserUA).StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	require.Equal(t, 10, limited)
	require.Equal(t, int64(pageViewLimit), views(t, ts, "/gpus/"))
	// The limiter's map stays bounded whatever the number of addresses.
	var l viewLimiter
	now := time.Now()
	for i := range maxViewClients * 2 {
		l.allow(strconv.Itoa(i), now)
	}
	require.LessOrEqual(t, len(l.hits), maxViewClients)
}

// Every public page of the Hugo site (not noindex: those have no beacon) is a known path,
// and nothing else is.
func TestPageViewPathsAreTheSitesPages(t *testing.T) {
	t.Parallel()
	root := "../site/content"
	want := map[string]bool{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".md") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(strings.TrimSuffix(rel, ".md"))
		rel = strings.TrimSuffix(strings.TrimSuffix(rel, "_index"), "/")
		if b, err := os.ReadFile(p); err != nil || strings.Contains(string(b), "render: never") || strings.Contains(string(b), "noindex: true") {
			return err // a section without a page of its own (/payment/), or a page without the beacon
		}
		if rel == "" {
			want["/"] = true
		} else {
			want["/"+rel+"/"] = true
		}
		return nil
	}))
	require.Equal(t, want, sitePages)
}

// The funnel starts at visitors: views of the landing page, on /ops/funnel and the console.
func TestFunnelShowsVisitors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for range 3 {
		require.Equal(t, http.StatusNoContent, pageView(ts, `{"path":"/"}`, browserUA).StatusCode)
	}
	require.Equal(t, http.StatusNoContent, pageView(ts, `{"path":"/plans/"}`, browserUA).StatusCode)
	ts.collect()
	w := ts.do("GET", "/ops/funnel", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"visitors":3`)
	w = ts.do("GET", "/ops/", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	require.Regexp(t, `id="funnel-visitors"(?s:.*?)<td class="num">3</td>`, w.Body.String())
	w = ts.do("GET", "/metrics", nil, adminHeader())
	require.Equal(t, "3", metricValue(w.Body.String(), "gpubroker_funnel_visitors"))
}
