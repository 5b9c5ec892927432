package billing_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing"
	"gpubroker/billing/stripesim"
)

const (
	testKey    = "sk_test_gpubroker"
	testSecret = "whsec_test_secret"
)

// receiver is a webhook endpoint that verifies every delivery with billing.ParseWebhook, as
// the API's handler does.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []*gpubroker.WebhookEvent
	byID     map[string]int // deliveries per event id, including refused ones
	failures []error        // deliveries that did not verify
	// failFirst answers 500 to the first n deliveries.
	failFirst int
	seen      int
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	t.Helper()
	rc := &receiver{byID: map[string]int{}, failFirst: failFirst}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := billing.ParseWebhook(body, r.Header.Get("Stripe-Signature"), testSecret)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil {
			rc.failures = append(rc.failures, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.byID[ev.ID]++
		rc.seen++
		if rc.seen <= rc.failFirst {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		rc.events = append(rc.events, ev)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"received":true}`))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// ofType returns the accepted events of one type.
func (rc *receiver) ofType(typ string) []*gpubroker.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []*gpubroker.WebhookEvent
	for _, e := range rc.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (rc *receiver) deliveries(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.byID[id]
}

func (rc *receiver) verifyFailures() []error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]error(nil), rc.failures...)
}

type env struct {
	sim    *stripesim.Server
	client *billing.Client
	hooks  *receiver
	apiURL string // the origin serving the stand-in
}

type envOpts struct {
	failFirst int
	retry     []time.Duration
}

// newEnv mounts the stand-in at /dev/stripe on a test server, as the dev server does, and
// points a billing.Client at it.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	rc := newReceiver(t, o.failFirst)
	retry := o.retry
	if retry == nil {
		retry = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sim := stripesim.New(stripesim.Config{
		PublicURL:     srv.URL,
		WebhookURL:    rc.srv.URL,
		WebhookSecret: testSecret,
		Logger:        slog.New(slog.DiscardHandler),
		RetrySchedule: retry,
	})
	t.Cleanup(sim.Close)
	mux.Handle("/dev/stripe/", sim)
	c := billing.New(billing.Config{SecretKey: testKey, APIBase: srv.URL + "/dev/stripe"})
	return &env{sim: sim, client: c, hooks: rc, apiURL: srv.URL}
}

func checkoutParams(orderID string) gpubroker.CheckoutParams {
	return gpubroker.CheckoutParams{
		OrderID: orderID,
		Email:   "ada@example.com",
		LineItems: []gpubroker.LineItem{
			{Name: "Pro plan", UnitAmountCent: 4900, Quantity: 1},
			{Name: "NVIDIA A100 80GB in us-east (per hour)", UnitAmountCent: 150, Quantity: 3},
		},
		Currency:       "usd",
		SuccessURL:     "http://localhost:8080/payment/success/?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:      "http://localhost:8080/get-started/",
		ExpiresAt:      time.Now().Add(gpubroker.CheckoutLifetime),
		IdempotencyKey: orderID,
	}
}

const checkoutTotal = 4900 + 3*150

// paidSession creates a session and pays it with the succeeding test card.
func (e *env) paidSession(t *testing.T, orderID string) (*gpubroker.CheckoutSession, *stripesim.PayResult) {
	t.Helper()
	ctx := context.Background()
	cs, err := e.client.CreateCheckout(ctx, checkoutParams(orderID))
	require.NoError(t, err)
	res, err := e.sim.Pay(ctx, cs.ID, "4242 4242 4242 4242")
	require.NoError(t, err)
	return cs, res
}
