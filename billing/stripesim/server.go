// Package stripesim is a stateful, in-memory stand-in for the few Stripe endpoints GPU Broker
// uses, so the real stripe-go client runs in development and tests without the internet.
//
// It speaks Stripe's REST dialect (form-encoded bodies with nested keys, Bearer sk_test_ keys,
// Stripe's error JSON and status codes, Idempotency-Key replay, Stripe-shaped ids and
// objects), serves a look-alike hosted checkout page with test cards and the receipt page a
// charge's receipt_url opens, and delivers webhooks signed exactly like Stripe's, retrying
// failed deliveries with backoff.
//
// Mount it at its prefix (default "/dev/stripe"):
//
//	sim := stripesim.New(stripesim.Config{PublicURL: "http://localhost:8080",
//		WebhookURL: "http://localhost:8080/api/stripe/webhook", WebhookSecret: "whsec_dev"})
//	defer sim.Close()
//	mux.Handle("/dev/stripe/", sim)
//
// and point stripe-go at PublicURL + "/dev/stripe". The handler accepts the full path or one
// already stripped of the prefix.
package stripesim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPrefix is where the dev server mounts the stand-in.
const DefaultPrefix = "/dev/stripe"

// DefaultWebhookSecret is the signing secret used when Config.WebhookSecret is empty (the dev
// default of STRIPE_WEBHOOK_SECRET).
const DefaultWebhookSecret = "whsec_dev"

// DefaultRetrySchedule is the wait before each webhook retry after a failed delivery: eight
// attempts in about two minutes. Stripe retries for three days; a dev loop wants to converge
// (or give up) while someone is still watching.
var DefaultRetrySchedule = []time.Duration{
	1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
	16 * time.Second, 32 * time.Second, 64 * time.Second,
}

// HoldLifetime is how long an uncaptured card authorization lives before it lapses (the
// PaymentIntent becomes canceled with reason automatic), as for online card payments.
const HoldLifetime = 7 * 24 * time.Hour

// Config configures a Server.
type Config struct {
	// Prefix is the path the handler is mounted at; default DefaultPrefix.
	Prefix string
	// PublicURL is the origin browsers reach the server at, used to build the hosted page
	// URL (PublicURL + Prefix + "/checkout/" + id). Empty means the origin of the request
	// that created the session.
	PublicURL string
	// WebhookURL receives the events. Empty means events are recorded but not delivered.
	WebhookURL string
	// WebhookSecret signs the events; default DefaultWebhookSecret.
	WebhookSecret string
	// HTTPClient delivers webhooks; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the stand-in's clock for object timestamps, session expiry and hold lapses;
	// default time.Now. Webhook signatures always use the wall clock, because the receiver
	// checks them against its own.
	Now func() time.Time
	// RetrySchedule is the wait before each retry of a failed delivery. Nil means
	// DefaultRetrySchedule; an empty non-nil slice disables retries.
	RetrySchedule []time.Duration
	// SweepInterval is how often open sessions past expires_at are expired and lapsed holds
	// cancelled (each API request also sweeps first). Default 10 s; negative disables the
	// background sweep.
	SweepInterval time.Duration
}

// Call is one REST request the stand-in answered, for assertions in tests.
type Call struct {
	Method string
	// Path is the Stripe path, without the mount prefix, e.g. "/v1/payment_intents/pi_…/capture".
	Path           string
	IdempotencyKey string
	// Status is the HTTP status answered; 0 when the answer was lost (LoseAnswer).
	Status int
	// Replayed is true when the answer was an idempotent replay of a stored response.
	Replayed bool
}

// Event is an event the stand-in emitted.
type Event struct {
	ID      string
	Type    string
	Created time.Time
	// Raw is the event JSON exactly as delivered.
	Raw []byte
	// Attempts counts delivery attempts (including Resend); Delivered is true once one was
	// answered with 2xx.
	Attempts  int
	Delivered bool
}

// event is an Event plus its JSON form, which is re-marshalled into Raw when the causing
// request is attached.
type event struct {
	Event
	j eventJSON
}

type idemEntry struct {
	fingerprint string
	status      int
	body        []byte
	created     time.Time
}

// Server is the Stripe stand-in. Create it with New and stop it with Close.
type Server struct {
	paused    atomic.Bool
	prefix    string
	publicURL string
	hookURL   string
	secret    string
	client    *http.Client
	log       *slog.Logger
	now       func() time.Time
	retry     []time.Duration
	mux       *http.ServeMux

	ctx    context.Context // cancelled by Close: stops retries and the sweeper
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	sessions  map[string]*CheckoutSession
	intents   map[string]*PaymentIntent
	charges   map[string]*Charge // by charge id
	refunds   map[string]*Refund
	events    []*event
	eventByID map[string]*event
	idem      map[string]*idemEntry
	calls     []Call
	captures  map[string]int
	// capturesRefused counts captures asked of an already captured PaymentIntent: a caller
	// that retried without looking first (Stripe refuses them, so nothing else shows them).
	capturesRefused map[string]int
	refundsN        map[string]int
	faults          []*Fault
	// holdLifetime is how long holds authorized from now on last.
	holdLifetime time.Duration
}

// New returns a running Server; call Close to stop its background work.
func New(cfg Config) *Server {
	s := &Server{
		prefix:          strings.TrimRight(cfg.Prefix, "/"),
		publicURL:       strings.TrimRight(cfg.PublicURL, "/"),
		hookURL:         cfg.WebhookURL,
		secret:          cfg.WebhookSecret,
		client:          cfg.HTTPClient,
		log:             cfg.Logger,
		now:             cfg.Now,
		retry:           cfg.RetrySchedule,
		sessions:        map[string]*CheckoutSession{},
		intents:         map[string]*PaymentIntent{},
		charges:         map[string]*Charge{},
		refunds:         map[string]*Refund{},
		eventByID:       map[string]*event{},
		idem:            map[string]*idemEntry{},
		captures:        map[string]int{},
		capturesRefused: map[string]int{},
		refundsN:        map[string]int{},

		holdLifetime: HoldLifetime,
	}
	if cfg.Prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.secret == "" {
		s.secret = DefaultWebhookSecret
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "stripesim")
	if s.now == nil {
		s.now = time.Now
	}
	if s.retry == nil {
		s.retry = DefaultRetrySchedule
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()

	interval := cfg.SweepInterval
	if interval == 0 {
		interval = 10 * time.Second
	}
	if interval > 0 {
		s.wg.Add(1)
		go s.sweeper(interval)
	}
	return s
}

// Close stops webhook retries and the sweeper and waits for them. The handler keeps answering
// but schedules no more retries.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/checkout/sessions", s.api(s.createSession))
	m.HandleFunc("GET /v1/checkout/sessions/{id}", s.api(s.getSession))
	m.HandleFunc("POST /v1/checkout/sessions/{id}/expire", s.api(s.expireSession))
	m.HandleFunc("GET /v1/payment_intents/{id}", s.api(s.getPaymentIntent))
	m.HandleFunc("POST /v1/payment_intents/{id}/capture", s.api(s.capturePaymentIntent))
	m.HandleFunc("POST /v1/payment_intents/{id}/cancel", s.api(s.cancelPaymentIntent))
	m.HandleFunc("POST /v1/refunds", s.api(s.createRefund))
	m.HandleFunc("GET /v1/refunds", s.api(s.listRefunds))
	m.HandleFunc("GET /v1/refunds/{id}", s.api(s.getRefund))
	m.HandleFunc("GET /v1/events/{id}", s.api(s.getEvent))
	m.HandleFunc("/v1/", s.api(s.unrecognized))
	m.HandleFunc("GET /checkout/{id}", s.handlePage)
	m.HandleFunc("POST /checkout/{id}/pay", s.handlePay)
	m.HandleFunc("GET /receipts/{id}", s.handleReceipt)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found (Stripe stand-in: the API is under "+s.prefix+"/v1/, hosted pages under "+s.prefix+"/checkout/ and "+s.prefix+"/receipts/)", http.StatusNotFound)
	})
	s.mux = m
}

// ServeHTTP serves the REST API under /v1/ and the hosted checkout pages under /checkout/,
// both below the prefix. The prefix is stripped here when present, so the handler works
// whether the router passes the full path or strips it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, s.prefix); ok && (rest == "" || rest[0] == '/') {
		p = rest
	}
	if p == "" {
		p = "/"
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = p
	r2.URL.RawPath = ""
	s.mux.ServeHTTP(w, r2)
}

// apiHandler runs with s.mu held and returns the object to answer with (or a Stripe error)
// and the events to deliver once the lock is released.
type apiHandler func(r *http.Request, p form, key string) (any, *apiError, []*event)

// api wraps an endpoint with what every Stripe endpoint does: authentication, body parsing,
// idempotency, Stripe's error JSON, and recording the call.
func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reqID := newID("req_", 14)
		w.Header().Set("Request-Id", reqID)
		w.Header().Set("Stripe-Version", APIVersion)
		key := ""
		if r.Method == http.MethodPost {
			key = strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		}
		call := Call{Method: r.Method, Path: r.URL.Path, IdempotencyKey: key}
		record := func(status int) {
			call.Status = status
			s.mu.Lock()
			s.calls = append(s.calls, call)
			s.mu.Unlock()
		}

		if aerr := checkAuth(r); aerr != nil {
			record(aerr.status)
			writeStripeError(w, aerr)
			return
		}
		p, raw, aerr := readParams(r)
		if aerr != nil {
			record(aerr.status)
			writeStripeError(w, aerr)
			return
		}
		if len(key) > 255 {
			aerr := invalidParam("Idempotency-Key", "Idempotency-Key must be at most 255 characters long.")
			record(aerr.status)
			writeStripeError(w, aerr)
			return
		}

		s.mu.Lock()
		swept := s.sweepLocked()
		fingerprint := r.Method + " " + r.URL.Path + "?" + raw
		if e, ok := s.idem[key]; key != "" && ok {
			if e.fingerprint != fingerprint {
				s.mu.Unlock()
				s.dispatchAll(swept)
				aerr := &apiError{status: 400, Type: typeIdempotency, Message: "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '" + key + "' if you meant to execute a different request."}
				record(aerr.status)
				writeStripeError(w, aerr)
				return
			}
			s.mu.Unlock()
			s.dispatchAll(swept)
			call.Replayed = true
			record(e.status)
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Idempotency-Key", key)
			writeRaw(w, e.status, e.body)
			return
		}
		fault, faulty := s.takeFaultLocked(r.Method, r.URL.Path, p)
		var mode FaultMode
		if faulty {
			mode = fault.Mode
		}
		var (
			obj any
			evs []*event
		)
		if faulty && mode == FailBefore {
			aerr = internalError()
		} else {
			obj, aerr, evs = h(r, p, key)
		}
		status, body := http.StatusOK, []byte(nil)
		if aerr != nil {
			status, body = aerr.status, errorBody(aerr)
		} else {
			body, _ = json.MarshalIndent(obj, "", "  ")
		}
		if faulty && mode == FailAfter {
			aerr = internalError()
			status, body = aerr.status, errorBody(aerr)
		}
		// Stripe stores the result once the endpoint started executing, 500s included, and
		// replays it for 24 hours; requests refused by parameter validation are not stored,
		// so a corrected retry with the same key can succeed.
		if key != "" && !(aerr != nil && aerr.Param != "" && aerr.status == 400) {
			s.idem[key] = &idemEntry{fingerprint: fingerprint, status: status, body: body, created: s.now()}
		}
		for _, ev := range evs {
			ev.setRequest(reqID, key)
		}
		s.mu.Unlock()

		if faulty && fault.Strike != nil && mode != FailBefore {
			fault.Strike()
		}
		if faulty && mode == Hang {
			// Done and stored; the caller hears nothing until it gives up.
			record(0)
			s.dispatchAll(swept)
			s.dispatchAll(evs)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Minute):
			}
			panic(http.ErrAbortHandler)
		}
		if faulty && mode == LoseAnswer {
			// Done and stored, but the caller never hears it: send the status and half the
			// body, then drop the connection. (Dropping it before any byte is not enough: Go's
			// transport silently resends a request carrying an Idempotency-Key on a reused
			// connection that closed early, and would get the stored answer.)
			record(0)
			s.dispatchAll(swept)
			s.dispatchAll(evs)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body[:len(body)/2])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			panic(http.ErrAbortHandler)
		}
		record(status)
		if key != "" {
			w.Header().Set("Idempotency-Key", key)
		}
		writeRaw(w, status, body)
		// Stripe sends webhooks asynchronously to API calls; so does the stand-in, which also
		// keeps a capture job from waiting on its own webhook handler.
		s.dispatchAll(swept)
		s.dispatchAll(evs)
	}
}

// checkAuth accepts a test-mode secret key as a Bearer token or as the basic-auth user
// (curl -u sk_test_…:), as Stripe does.
func checkAuth(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	key := ""
	switch {
	case strings.HasPrefix(h, "Bearer "):
		key = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	case strings.HasPrefix(h, "Basic "):
		if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic ")); err == nil {
			key, _, _ = strings.Cut(string(b), ":")
		}
	}
	if key == "" {
		return &apiError{status: 401, Type: typeInvalidRequest,
			Message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."}
	}
	if !strings.HasPrefix(key, "sk_test_") || len(key) <= len("sk_test_") {
		return &apiError{status: 401, Type: typeInvalidRequest, Code: "api_key_invalid",
			Message: "Invalid API Key provided: " + redactKey(key) + " (the Stripe stand-in accepts only test secret keys, sk_test_…)"}
	}
	return nil
}

func redactKey(k string) string {
	if len(k) <= 12 {
		return strings.Repeat("*", len(k))
	}
	return k[:8] + strings.Repeat("*", len(k)-12) + k[len(k)-4:]
}

// readParams decodes the query (GET) or the form body (POST) into a tree and returns the
// canonical encoding used to compare idempotent requests.
func readParams(r *http.Request) (form, string, *apiError) {
	var vals url.Values
	if r.Method == http.MethodGet {
		vals = r.URL.Query()
	} else {
		ct := r.Header.Get("Content-Type")
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, "", &apiError{status: 400, Type: typeInvalidRequest, Message: "Could not read the request body."}
		}
		if len(body) > 0 && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return nil, "", &apiError{status: 400, Type: typeInvalidRequest,
				Message: "Invalid request: the Stripe API expects application/x-www-form-urlencoded bodies, got `" + ct + "`."}
		}
		vals, err = url.ParseQuery(string(body))
		if err != nil {
			return nil, "", &apiError{status: 400, Type: typeInvalidRequest, Message: "Invalid request body: " + err.Error()}
		}
	}
	p, aerr := parseForm(vals)
	if aerr != nil {
		return nil, "", aerr
	}
	return p, vals.Encode(), nil
}

func errorBody(e *apiError) []byte {
	b, _ := json.MarshalIndent(map[string]*apiError{"error": e}, "", "  ")
	return b
}

func writeStripeError(w http.ResponseWriter, e *apiError) { writeRaw(w, e.status, errorBody(e)) }

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) unrecognized(r *http.Request, _ form, _ string) (any, *apiError, []*event) {
	return nil, &apiError{status: 404, Type: typeInvalidRequest,
		Message: "Unrecognized request URL (" + r.Method + ": " + r.URL.Path + "). The Stripe stand-in implements only the endpoints GPU Broker uses."}, nil
}

// sweeper periodically applies time-based transitions so their webhooks are sent even when
// nobody calls the API.
func (s *Server) sweeper(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			evs := s.sweepLocked()
			s.mu.Unlock()
			s.dispatchAll(evs)
		}
	}
}

// sweepLocked expires open sessions past expires_at, lapses holds past their capture_before
// and forgets idempotency keys older than 24 hours, as Stripe does.
func (s *Server) sweepLocked() []*event {
	now := s.now()
	var evs []*event
	for _, cs := range s.sessions {
		if cs.Status == statusOpen && now.Unix() >= cs.ExpiresAt {
			evs = append(evs, s.expireLocked(cs))
		}
	}
	for _, pi := range s.intents {
		deadline := time.Unix(pi.Created, 0).Add(HoldLifetime)
		if ch := s.chargeOf(pi); ch != nil && ch.PaymentMethodDetails.Card.CaptureBefore != 0 {
			deadline = time.Unix(ch.PaymentMethodDetails.Card.CaptureBefore, 0)
		}
		if pi.Status == piRequiresCapture && !now.Before(deadline) {
			evs = append(evs, s.cancelLocked(pi, "automatic"))
		}
	}
	for k, e := range s.idem {
		if now.Sub(e.created) > 24*time.Hour {
			delete(s.idem, k)
		}
	}
	return evs
}

// Errors returned by the exported methods.
var (
	// ErrNotFound: no such session, PaymentIntent or event.
	ErrNotFound = errors.New("stripesim: no such object")
	// ErrSessionNotOpen: the session is complete or expired and cannot be paid or expired.
	ErrSessionNotOpen = errors.New("stripesim: checkout session is not open")
	// ErrWrongState: the PaymentIntent is not in a state allowing the operation.
	ErrWrongState = errors.New("stripesim: payment intent is not in the required state")
	// ErrCardDeclined: the test card 4000 0000 0000 0002 was used.
	ErrCardDeclined = errors.New("stripesim: your card was declined")
	// ErrInvalidCard: a card number other than the supported test cards.
	ErrInvalidCard = errors.New("stripesim: unsupported card number; use 4242 4242 4242 4242 (succeeds) or 4000 0000 0000 0002 (declined)")
	// ErrNoWebhookURL: Deliver or Resend without a configured WebhookURL.
	ErrNoWebhookURL = errors.New("stripesim: no webhook URL configured")
)

// Session returns a copy of a Checkout Session, or nil.
func (s *Server) Session(id string) *CheckoutSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs, ok := s.sessions[id]; ok {
		return cs.clone()
	}
	return nil
}

// PaymentIntent returns a copy of a PaymentIntent, or nil.
func (s *Server) PaymentIntent(id string) *PaymentIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pi, ok := s.intents[id]; ok {
		return pi.clone()
	}
	return nil
}

// Charge returns a copy of a charge, or nil.
func (s *Server) Charge(id string) *Charge {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.charges[id]; ok {
		c := *ch
		c.Metadata = maps.Clone(ch.Metadata)
		c.items = slices.Clone(ch.items)
		return &c
	}
	return nil
}

// CaptureCount is how many captures were applied to a PaymentIntent (idempotent replays and
// refused captures not counted).
func (s *Server) CaptureCount(piID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.captures[piID]
}

// CapturesRefused is how many captures were asked of the PaymentIntent after it was
// captured (refused by Stripe; replays not counted): each is a capture retried blindly.
func (s *Server) CapturesRefused(piID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.capturesRefused[piID]
}

// RefundCount is how many refunds were created for a PaymentIntent (replays not counted).
func (s *Server) RefundCount(piID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refundsN[piID]
}

// Calls returns the REST requests answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Events returns the events emitted so far, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.events))
	for _, e := range s.events {
		c := e.Event
		c.Raw = append([]byte(nil), e.Raw...)
		out = append(out, c)
	}
	return out
}
