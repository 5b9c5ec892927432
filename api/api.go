// Package api is GPU Broker's HTTP API on httprouter: checkout, Stripe webhooks, activation and
// sign-in, the dashboard's JSON, and the ops routes. It writes state and enqueues jobs in the
// same transaction; it never calls a GPU provider or sends mail itself.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/opsview"
	"gpubroker/postgres"
)

// Server holds the API's dependencies. main wires it by field assignment.
type Server struct {
	Pool *pgxpool.Pool
	// Events stores webhook events, concurrent ones sharing a commit; Handler makes one on
	// Pool when it is nil.
	Events        *postgres.EventWriter
	Jobs          lifecycle.Inserter
	Payments      gpubroker.Payments
	Catalog       *gpubroker.Catalog
	PublicURL     string // the site's origin: redirects, emails and the Origin check
	WebhookSecret string
	// ParseWebhook verifies and parses a Stripe webhook (billing.ParseWebhook).
	ParseWebhook  func(payload []byte, header, secret string) (*gpubroker.WebhookEvent, error)
	SecureCookies bool
	AdminUser     string
	AdminPassword string // empty: ops routes answer 404
	SalesEmail    string
	// StripeTestMode links the ops console to Stripe's test-mode dashboard.
	StripeTestMode bool
	// TrustedProxyHops is how many proxies append to X-Forwarded-For in front of the API.
	TrustedProxyHops int
	// NoRateLimits lifts the per-IP and per-email limits (load tests and benchmarks).
	NoRateLimits bool
	Logger       *slog.Logger
	Now          func() time.Time
	// Clock is how long a rented hour lasts and how early holds are released (the zero value is
	// production's; test runs compress it, as the worker's jobs.Deps.Clock).
	Clock gpubroker.RentalClock
	// OpsView is the ops read model /metrics, /ops/funnel and the console serve, started by
	// main; Handler makes one on Pool when it is nil, which collects on first use only.
	OpsView *opsview.Collector
	// PodChanges wakes GET /api/pods/{id}/events when a pod may have changed (main runs a
	// postgres.PodListener); nil: that route answers 503 and the dashboard polls.
	PodChanges PodChanges
	// StreamKeepalive and StreamLifetime time the event streams; zero: DefaultStreamKeepalive
	// and DefaultStreamLifetime.
	StreamKeepalive, StreamLifetime time.Duration

	metrics metrics
	opsAuth opsThrottle
	views   viewLimiter
	router  *httprouter.Router // for metrics' route labels
	// closeStreams closes streamsDone once (CloseStreams), ending every event stream;
	// streamReadSlots bounds their reads (reread).
	closeStreams    sync.Once
	streamsMu       sync.Mutex
	streamsDone     chan struct{}
	streamReadSlots chan struct{}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Handler returns the API's routes wrapped in the request-id, logging and recovery middleware.
func (s *Server) Handler() http.Handler {
	if s.Events == nil {
		s.Events = postgres.NewEventWriter(s.Pool)
	}
	if s.OpsView == nil {
		s.OpsView = &opsview.Collector{DB: s.Pool, Logger: s.Logger}
	}
	r := httprouter.New()
	r.HandleMethodNotAllowed = true
	// No CORS: the site and the API share an origin. httprouter's automatic OPTIONS answer
	// would also answer 200 for ops routes before their guard.
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, gpubroker.Errorf(gpubroker.ENOTFOUND, "not_found", "No such route."))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: "method_not_allowed", Message: "Method not allowed."})
	})
	r.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		logger(r).ErrorContext(r.Context(), "panic in handler", "panic", v)
		writeError(w, r, errors.New("panic"))
	}

	// Endpoints (endpoint.go) with their success status; signedIn ones find the session's
	// account first. The handle* routes write their own answers: the catalog (cached), the
	// webhook (the raw body), the boot report (a bearer secret) and the receipt (a redirect).
	r.GET("/api/catalog", s.handleCatalog)
	r.POST("/api/checkout", s.origin(serve(s, http.StatusCreated, anyone, s.checkout)))
	r.POST("/api/quote", s.origin(serve(s, http.StatusOK, anyone, s.quoteOrder)))
	r.POST("/api/stripe/webhook", s.handleWebhook)
	r.GET("/api/checkout/verify", serve(s, http.StatusOK, anyone, s.verify))
	r.POST("/api/activate", s.origin(serve(s, http.StatusOK, anyone, s.activate)))
	r.POST("/api/activation/resend", s.origin(serve(s, http.StatusAccepted, anyone, s.resend)))
	r.POST("/api/login", s.origin(serve(s, http.StatusAccepted, anyone, s.login)))
	r.POST("/api/login/verify", s.origin(serve(s, http.StatusOK, anyone, s.loginVerify)))
	r.POST("/api/logout", s.cookieOrigin(serve(s, http.StatusNoContent, anyone, s.logout)))
	r.GET("/api/me", serve(s, http.StatusOK, signedIn, s.me))
	r.DELETE("/api/me", s.cookieOrigin(serve(s, http.StatusAccepted, signedIn, s.requestDeletion)))
	r.POST("/api/me/delete", s.origin(serve(s, http.StatusOK, anyone, s.deleteAccount)))
	r.GET("/api/pods/:id", serve(s, http.StatusOK, signedIn, s.pod))
	r.POST("/api/pods/:id/deploy", s.cookieOrigin(serve(s, http.StatusAccepted, signedIn, s.deploy)))
	r.POST("/api/pods/:id/terminate", s.cookieOrigin(serve(s, http.StatusAccepted, signedIn, s.terminate)))
	r.POST("/api/pods/:id/extend", s.cookieOrigin(serve(s, http.StatusCreated, signedIn, s.extend)))
	r.GET("/api/pods/:id/extend", serve(s, http.StatusOK, signedIn, s.extensionQuote))
	r.GET("/api/pods/:id/events", s.handlePodEvents) // a stream, not one JSON answer
	r.POST("/api/pods/:id/boot", s.handleBoot)       // the pod's own bootstrap: its secret, no cookie
	r.GET("/api/me/ssh-keys", serve(s, http.StatusOK, signedIn, s.listSSHKeys))
	r.POST("/api/me/ssh-keys", s.cookieOrigin(serve(s, http.StatusCreated, signedIn, s.addSSHKey)))
	r.DELETE("/api/me/ssh-keys/:id", s.cookieOrigin(serve(s, http.StatusNoContent, signedIn, s.deleteSSHKey)))
	r.GET("/api/me/receipts/:id", s.handleReceipt)
	r.POST("/api/contact", s.origin(serve(s, http.StatusAccepted, anyone, s.contact)))
	r.POST("/api/pageviews", s.origin(serve(s, http.StatusNoContent, anyone, s.pageView)))

	r.GET("/healthz", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, Status{Status: "ok"})
	})
	r.GET("/readyz", s.handleReady)
	// Metrics are never public: here behind admin auth, unauthenticated only on the private
	// listener that MetricsHandler serves (METRICS_ADDR).
	r.GET("/metrics", s.admin(s.handleMetrics))
	r.GET("/ops/funnel", s.admin(s.handleFunnel))
	r.GET("/ops/", s.admin(s.handleConsole))
	r.GET("/ops/orders", s.admin(s.handleOrderSearch))
	r.GET("/ops/orders/:id", s.admin(s.handleOrderStory))
	s.router = r
	return s.middleware(cleanInput(r))
}

// MetricsHandler serves /metrics without authentication, for a listener only the scraper
// reaches (METRICS_ADDR: loopback or a private address).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { s.handleMetrics(w, r, nil) })
	return mux
}

// status maps domain error codes to HTTP statuses: the one place this happens.
var status = map[string]int{
	gpubroker.EINVALID:      http.StatusUnprocessableEntity,
	gpubroker.EBADREQUEST:   http.StatusBadRequest,
	gpubroker.EUNAUTHORIZED: http.StatusUnauthorized,
	gpubroker.EFORBIDDEN:    http.StatusForbidden,
	gpubroker.ENOTFOUND:     http.StatusNotFound,
	gpubroker.ECONFLICT:     http.StatusConflict,
	gpubroker.EGONE:         http.StatusGone,
	gpubroker.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	gpubroker.ERATELIMIT:    http.StatusTooManyRequests,
	gpubroker.EUNAVAILABLE:  http.StatusServiceUnavailable,
	gpubroker.EINTERNAL:     http.StatusInternalServerError,
}

// writeError answers err in the contract's shape. A domain error says its own status; any
// other error (a store or library failure) is classified by postgres.ClassifyError — 503 only
// for a real outage, 400 for input Postgres refused, 500 for a bug — and its cause is logged
// with the request id, since the answer does not carry it.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *gpubroker.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) {
			return
		}
		errors.As(postgres.ClassifyError(err), &e)
		switch e.Code {
		case gpubroker.EBADREQUEST, gpubroker.ENOTFOUND:
			logger(r).WarnContext(r.Context(), "request refused by the store", "error", err)
		case gpubroker.EUNAVAILABLE:
			logger(r).ErrorContext(r.Context(), "database unavailable", "error", err)
		default:
			logger(r).ErrorContext(r.Context(), "internal error", "error", err)
		}
	}
	reason := e.Reason
	if reason == "" {
		reason = e.Code
	}
	code, ok := status[e.Code]
	if !ok {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, ErrorBody{Error: reason, Message: e.Message, Fields: e.Fields})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a small JSON body; anything malformed is a 400, and so is text no column
// could hold (invalid UTF-8, NUL characters), so hostile bytes never reach Postgres.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return gpubroker.Errorf(gpubroker.ETOOLARGE, "too_large", "The request body is too large.")
		}
		return gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "Could not read the request body.")
	}
	if !utf8.Valid(body) {
		return gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "The request body must be UTF-8 JSON.")
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		return gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "The request body must be JSON.")
	}
	if hasNUL(body) {
		return gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "The request body must not contain NUL characters.")
	}
	return nil
}

// hasNUL reports whether a JSON text holds a NUL character anywhere, in a field we read or
// not: a raw 0x00 byte or the escape \u0000, which Postgres text and jsonb refuse.
func hasNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0:
			return true
		case '\\':
			if bytes.HasPrefix(b[i+1:], []byte("u0000")) {
				return true
			}
			i++ // the escaped character, so \\u0000 (a backslash, then "u0000") is not NUL
		}
	}
	return false
}
