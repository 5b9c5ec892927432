package api

import (
	"context"

	"strings"
	"sync"
	"time"

	"gpubroker"
	"gpubroker/postgres"
)

// sitePages are the Hugo site's public pages, those search engines may index (the others,
// noindex, get no beacon: the dashboard, sign-in, activation and payment pages;
// TestPageViewPathsAreTheSitesPages keeps them in step with site/content): the only paths
// POST /api/pageviews counts.
var sitePages = map[string]bool{
	"/": true, "/contact/": true, "/get-started/": true, "/gpus/": true, "/plans/": true,
	"/privacy/": true, "/refund-policy/": true, "/terms/": true,
}

// PageViewRequest is POST /api/pageviews' body: the site path viewed, nothing else.
type PageViewRequest struct {
	Path string `json:"path"`
}

// pageViewLimit is how many views one address (rateNet) may count a minute in one process:
// more than anyone reads, few enough that a flood cannot inflate the funnel.
const pageViewLimit = 60

// maxViewClients bounds the limiter's map: past it, new addresses are refused until the
// minute ends, so a flood from many addresses cannot grow the process's memory.
const maxViewClients = 10000

// viewLimiter counts views per address in memory for the current minute. Its zero value is
// ready; nothing in it outlives the minute.
type viewLimiter struct {
	mu    sync.Mutex
	start time.Time
	hits  map[string]int
}

func (l *viewLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hits == nil || now.Sub(l.start) >= time.Minute || now.Before(l.start) {
		l.start, l.hits = now, map[string]int{}
	}
	n, seen := l.hits[key]
	if !seen && len(l.hits) >= maxViewClients || n >= pageViewLimit {
		return false
	}
	l.hits[key] = n + 1
	return true
}

// isBot is a plain user agent check: crawlers and link previews name themselves. The user
// agent is read here and never stored.
func isBot(ua string) bool {
	if ua == "" {
		return true
	}
	ua = strings.ToLower(ua)
	for _, w := range []string{"bot", "crawl", "spider", "slurp", "preview", "facebookexternalhit", "curl/", "wget/", "python-"} {
		if strings.Contains(ua, w) {
			return true
		}
	}
	return false
}

// pageView counts one view of a site page (site/assets/js/pageview.js sends it after load):
// 204, with no cookie, and nothing about the visitor stored (migration 022 keeps a counter per
// UTC day and path). Unknown paths are 422; bots get 204 and are not counted.
func (s *Server) pageView(ctx context.Context, c *call, req *PageViewRequest) (*noContent, error) {
	if !sitePages[req.Path] {
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Not a page of this site.", Fields: map[string]string{"path": "unknown"}}
	}
	if isBot(c.r.UserAgent()) {
		return &noContent{}, nil
	}
	if !s.NoRateLimits && !s.views.allow(s.rateNet(c.r), s.now()) {
		c.w.Header().Set("Retry-After", retryAfter(time.Minute))
		return nil, errRateLimited
	}
	if err := postgres.CountPageView(ctx, s.Pool, req.Path, s.now()); err != nil {
		return nil, err
	}
	return &noContent{}, nil
}
