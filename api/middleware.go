package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

type ctxKey int

const requestKey ctxKey = 0

// request is what the middleware keeps about a request in its context: the id, the logger
// (made on first use: most requests log nothing but their one request line) and attributes a
// handler adds to that line.
type request struct {
	id     string
	base   *slog.Logger
	logger *slog.Logger
	attrs  []any
}

// logger returns the request's logger, which tags every line with its request id.
func logger(r *http.Request) *slog.Logger {
	if q, ok := r.Context().Value(requestKey).(*request); ok {
		if q.logger == nil {
			q.logger = q.base.With("request_id", q.id)
		}
		return q.logger
	}
	return slog.Default()
}

// logAttrs adds key-value pairs to the request's log line: one line per request instead of a
// handler's own line next to it.
func logAttrs(r *http.Request, args ...any) {
	if q, ok := r.Context().Value(requestKey).(*request); ok {
		q.attrs = append(q.attrs, args...)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware gives each request an id (echoed in X-Request-Id and every log line), logs it,
// and counts it for /metrics.
func (s *Server) middleware(next http.Handler) http.Handler {
	base := s.Logger
	if base == nil {
		base = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		// Nothing the API answers is meant to be framed (ops pages say so again, with CSP).
		w.Header().Set("X-Frame-Options", "DENY")
		q := &request{id: id, base: base}
		r = r.WithContext(context.WithValue(r.Context(), requestKey, q))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		s.metrics.observe(routeLabel(s.router, r.Method, r.URL.Path), r.Method, sw.status, d)
		base.Info("http request", append([]any{"request_id", id, "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", d.Milliseconds()}, q.attrs...)...)
	})
}

// cleanInput refuses, with 400 bad_request, a request whose path or query carries text no
// column could hold (a NUL character, invalid UTF-8 after unescaping), so hostile bytes never
// reach Postgres. JSON bodies get the same check in readJSON.
func cleanInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanAddress(r) {
			writeError(w, r, gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "The address contains characters we cannot accept."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanAddress reports whether the request's path and query hold only text a column can hold.
func cleanAddress(r *http.Request) bool {
	ok := cleanText(r.URL.Path)
	q, _ := url.ParseQuery(r.URL.RawQuery) // what survives parsing is what handlers read
	for k, vs := range q {
		ok = ok && cleanText(k)
		for _, v := range vs {
			ok = ok && cleanText(v)
		}
	}
	return ok
}

func cleanText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// readBody is io.ReadAll into a buffer of the announced size (Content-Length, -1 when
// unknown), rather than io.ReadAll's repeated doublings from 512 bytes; the reader (an
// http.MaxBytesReader) still enforces the limit whatever the header claims.
func readBody(rd io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, max(size, 511)+1)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the next size
		}
	}
}

// routeLabel is the route a request matched, as registered (/api/pods/:id/deploy), or
// "unmatched": metrics keep one series per route whatever paths clients send.
func routeLabel(router *httprouter.Router, method, path string) string {
	if router == nil {
		return "unmatched"
	}
	h, ps, _ := router.Lookup(method, path)
	if h == nil {
		return "unmatched"
	}
	for _, p := range ps {
		path = strings.Replace(path, "/"+p.Value, "/:"+p.Key, 1)
	}
	return path
}

// origin refuses a POST whose Origin header names another site. Browsers always send Origin
// on fetch POSTs; requests without one (curl, server-to-server) carry no cookie to abuse here.
func (s *Server) origin(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if o := r.Header.Get("Origin"); o != "" && o != s.PublicURL {
			writeError(w, r, gpubroker.Errorf(gpubroker.EFORBIDDEN, "bad_origin", "This request must come from %s.", s.PublicURL))
			return
		}
		h(w, r, ps)
	}
}

// cookieOrigin guards cookie-authenticated POSTs (CSRF): the Origin, or failing that the
// Referer, must be the site's own.
func (s *Server) cookieOrigin(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		o := r.Header.Get("Origin")
		if o == "" {
			if ref, err := url.Parse(r.Referer()); err == nil && ref.Host != "" {
				o = ref.Scheme + "://" + ref.Host
			}
		}
		if o != s.PublicURL {
			writeError(w, r, gpubroker.Errorf(gpubroker.EFORBIDDEN, "bad_origin", "This request must come from %s.", s.PublicURL))
			return
		}
		h(w, r, ps)
	}
}

// admin guards the router's ops routes as Ops guards the River UI.
func (s *Server) admin(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		s.Ops(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, ps) })).ServeHTTP(w, r)
	}
}

// Ops guards an ops handler: the router's console, funnel and metrics, and the River UI that
// the process mounts beside the router.
//
//   - No page of it may be framed (clickjacking): X-Frame-Options and frame-ancestors.
//   - With no ADMIN_PASSWORD it does not exist (404), so an unconfigured deployment shows nothing.
//   - A request that is not a read must carry the site's own Origin. A browser holding the ops
//     credentials sends them with any site's form post, and River UI reads any body as JSON
//     (enctype=text/plain passes); browsers always send Origin on non-GET fetches and forms, so
//     River UI's own page passes. No content type is required: River UI posts JSON without
//     one, and its pause and resume are PUTs without a body.
//   - HTTP basic auth, compared in constant time, with failures throttled per client address
//     (opsThrottle).
func (s *Server) Ops(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		if s.AdminPassword == "" {
			writeError(w, r, gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "No such route."))
			return
		}
		if !cleanAddress(r) { // the River UI sits outside the router's cleanInput; its actions are audited
			writeError(w, r, gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "The address contains characters we cannot accept."))
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if r.Header.Get("Origin") != s.PublicURL {
				writeError(w, r, gpubroker.Errorf(gpubroker.EFORBIDDEN, "bad_origin", "Ops actions must come from %s.", s.PublicURL))
				return
			}
		}
		client := s.rateNet(r)
		if wait := s.opsAuth.wait(client, s.now()); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			writeError(w, r, gpubroker.Errorf(gpubroker.ERATELIMIT, "rate_limited", "Too many wrong passwords from your address. Wait a little and try again."))
			return
		}
		u, p, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(s.AdminUser)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(p), []byte(s.AdminPassword)) == 1
		if !ok || !userOK || !passOK {
			if ok { // a browser's first request carries no credentials: not a guess
				s.opsAuthFailed(r, client)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="gpubroker ops", charset="UTF-8"`)
			writeError(w, r, gpubroker.Errorf(gpubroker.EUNAUTHORIZED, "unauthorized", "Ops credentials required."))
			return
		}
		s.opsAuth.succeeded(client)
		next.ServeHTTP(w, r)
	})
}

// opsAuthFailed counts a wrong password against the client address and records it in the audit
// log: one ops.auth_failed event per client per window, whose failures count is kept up to
// date, so a guessing run is one line with its size rather than thousands. The audit is best
// effort: a database outage must not turn a 401 into a 503.
func (s *Server) opsAuthFailed(r *http.Request, client string) {
	now := s.now()
	id, window, failures := s.opsAuth.failed(client, now)
	ctx := r.Context()
	detail := map[string]any{"client": client, "window_start": window, "failures": failures, "last_at": now, "user": s.AdminUser}
	var err error
	if id == 0 {
		if id, err = postgres.AuditReturningID(ctx, s.Pool, postgres.AuditEvent{Action: gpubroker.ActionOpsAuthFailed, Detail: detail}); err == nil {
			s.opsAuth.setAuditID(client, window, id)
		}
	} else {
		err = postgres.UpdateAuditDetail(ctx, s.Pool, id, detail)
	}
	if err != nil {
		logger(r).WarnContext(ctx, "error auditing an ops auth failure", "client", client, "error", err)
	}
	logger(r).WarnContext(ctx, "ops auth failed", "client", client, "failures", failures)
}

// clientIP is the address rate limits count against. Behind N trusted proxies that each append
// the address they saw to X-Forwarded-For (CloudFront, then the ALB: N = 2), the client is the
// N-th entry from the right; entries further left are whatever the client sent, so they are
// never trusted. With no trusted proxies it is the peer address.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if s.TrustedProxyHops == 0 {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	if i := len(hops) - s.TrustedProxyHops; i >= 0 && i < len(hops) && hops[i] != "" {
		return hops[i]
	}
	return host
}

// rateNet is what per-client rate limits count: the client's IPv4 address, or its IPv6 /64
// (one subscriber's block, whose other addresses cost an attacker nothing).
func (s *Server) rateNet(r *http.Request) string {
	ip := s.clientIP(r)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if addr = addr.Unmap(); addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

// limit counts a hit against key and answers 429 (with Retry-After) over the limit. Endpoints
// use allow.
func (s *Server) limit(w http.ResponseWriter, r *http.Request, key string, n int, window time.Duration) bool {
	ok := s.allowed(r, key, n, window)
	if !ok {
		w.Header().Set("Retry-After", retryAfter(window))
		writeError(w, r, errRateLimited)
	}
	return ok
}

// allowed counts a hit against key and reports whether it is within n a window. A database
// error fails open: losing rate limiting briefly beats refusing every customer.
func (s *Server) allowed(r *http.Request, key string, n int, window time.Duration) bool {
	if s.NoRateLimits {
		return true
	}
	ok, err := postgres.Allow(r.Context(), s.Pool, key, n, window, s.now())
	if err != nil {
		logger(r).WarnContext(r.Context(), "rate limit check failed; allowing", "error", err)
		return true
	}
	return ok
}

var errRateLimited = gpubroker.Errorf(gpubroker.ERATELIMIT, "rate_limited", "Too many requests. Please wait a little and try again.")

func retryAfter(window time.Duration) string { return strconv.Itoa(int(window.Seconds())) }
