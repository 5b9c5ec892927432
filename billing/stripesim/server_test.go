package stripesim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/billing/stripesim"
)

const key = "sk_test_123"

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	sim  *stripesim.Server
	base string // origin; the stand-in is at base + "/dev/stripe"
	hits atomic.Int32
}

func newHarness(t *testing.T, mutate func(*stripesim.Config)) *harness {
	t.Helper()
	h := &harness{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
	}))
	t.Cleanup(hook.Close)
	cfg := stripesim.Config{
		WebhookURL:    hook.URL,
		WebhookSecret: "whsec_x",
		Logger:        slog.New(slog.DiscardHandler),
		RetrySchedule: []time.Duration{},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.sim = stripesim.New(cfg)
	t.Cleanup(h.sim.Close)
	mux := http.NewServeMux()
	mux.Handle("/dev/stripe/", h.sim)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h.base = srv.URL
	return h
}

// noRedirect lets tests see the 303.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (h *harness) do(t *testing.T, method, path string, form url.Values, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.base+"/dev/stripe"+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func sessionForm() url.Values {
	return url.Values{
		"mode":                                          {"payment"},
		"line_items[0][price_data][currency]":           {"usd"},
		"line_items[0][price_data][unit_amount]":        {"4900"},
		"line_items[0][price_data][product_data][name]": {"Pro plan"},
		"line_items[0][quantity]":                       {"1"},
		"line_items[1][price_data][currency]":           {"usd"},
		"line_items[1][price_data][unit_amount]":        {"150"},
		"line_items[1][price_data][product_data][name]": {"A100 <80GB> (per hour)"},
		"line_items[1][quantity]":                       {"3"},
		"payment_intent_data[capture_method]":           {"manual"},
		"payment_intent_data[metadata][order_id]":       {"ord_1"},
		"metadata[order_id]":                            {"ord_1"},
		"client_reference_id":                           {"ord_1"},
		"customer_email":                                {"ada@example.com"},
		"success_url":                                   {"http://site.test/payment/success/?session_id={CHECKOUT_SESSION_ID}"},
		"cancel_url":                                    {"http://site.test/get-started/"},
		"payment_method_types[0]":                       {"card"},
	}
}

type stripeErr struct {
	Error struct {
		Type, Code, Message, Param string
	} `json:"error"`
}

func decodeErr(t *testing.T, b []byte) stripeErr {
	t.Helper()
	var e stripeErr
	require.NoError(t, json.Unmarshal(b, &e), string(b))
	require.NotEmpty(t, e.Error.Type, string(b))
	require.NotEmpty(t, e.Error.Message, string(b))
	return e
}

func (h *harness) createSession(t *testing.T) map[string]any {
	t.Helper()
	status, _, body := h.do(t, "POST", "/v1/checkout/sessions", sessionForm(), nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var cs map[string]any
	require.NoError(t, json.Unmarshal(body, &cs))
	return cs
}

func TestRESTDialect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)

	t.Run("authentication", func(t *testing.T) {
		for _, auth := range []string{"", "Bearer sk_live_123", "Bearer pk_test_123", "Bearer sk_test_"} {
			status, _, body := h.do(t, "GET", "/v1/payment_intents/pi_1", nil, map[string]string{"Authorization": auth})
			require.Equal(t, http.StatusUnauthorized, status, auth)
			require.Equal(t, "invalid_request_error", decodeErr(t, body).Error.Type)
		}
		// curl -u sk_test_…: works as with Stripe.
		status, _, body := h.do(t, "GET", "/v1/payment_intents/pi_1", nil,
			map[string]string{"Authorization": "Basic " + b64(key+":")})
		require.Equal(t, http.StatusNotFound, status)
		e := decodeErr(t, body)
		require.Equal(t, "resource_missing", e.Error.Code)
		require.Equal(t, "No such payment_intent: 'pi_1'", e.Error.Message)
	})

	t.Run("create parses nested form keys", func(t *testing.T) {
		cs := h.createSession(t)
		id := cs["id"].(string)
		require.True(t, strings.HasPrefix(id, "cs_test_"))
		require.Equal(t, "checkout.session", cs["object"])
		require.Equal(t, float64(4900+450), cs["amount_total"])
		require.Equal(t, "usd", cs["currency"])
		require.Equal(t, "open", cs["status"])
		require.Equal(t, "unpaid", cs["payment_status"])
		require.Equal(t, "ord_1", cs["client_reference_id"])
		require.Equal(t, "payment", cs["mode"])
		require.Nil(t, cs["payment_intent"])
		require.Equal(t, h.base+"/dev/stripe/checkout/"+id, cs["url"])
		require.Equal(t, map[string]any{"order_id": "ord_1"}, cs["metadata"])
		require.InDelta(t, time.Now().Add(24*time.Hour).Unix(), cs["expires_at"], 5)
		sim := h.sim.Session(id)
		require.Equal(t, "manual", sim.CaptureMethod)
		require.Equal(t, []stripesim.LineItem{
			{Name: "Pro plan", UnitAmount: 4900, Quantity: 1, Currency: "usd"},
			{Name: "A100 <80GB> (per hour)", UnitAmount: 150, Quantity: 3, Currency: "usd"},
		}, sim.LineItems)
	})

	t.Run("validation errors", func(t *testing.T) {
		cases := []struct {
			name   string
			mutate func(url.Values)
			code   string
			param  string
		}{
			{"missing mode", func(v url.Values) { v.Del("mode") }, "parameter_missing", "mode"},
			{"subscription mode", func(v url.Values) { v.Set("mode", "subscription") }, "parameter_invalid", "mode"},
			{"unknown param", func(v url.Values) { v.Set("ui_mod", "hosted") }, "parameter_unknown", "ui_mod"},
			{"unknown nested param", func(v url.Values) { v.Set("payment_intent_data[capture]", "manual") }, "parameter_unknown", "payment_intent_data[capture]"},
			{"bad capture method", func(v url.Values) { v.Set("payment_intent_data[capture_method]", "later") }, "parameter_invalid", "payment_intent_data[capture_method]"},
			{"missing success_url", func(v url.Values) { v.Del("success_url") }, "parameter_missing", "success_url"},
			{"missing quantity", func(v url.Values) { v.Del("line_items[1][quantity]") }, "parameter_missing", "line_items[1][quantity]"},
			{"non-integer amount", func(v url.Values) { v.Set("line_items[0][price_data][unit_amount]", "49.00") }, "parameter_invalid_integer", "line_items[0][price_data][unit_amount]"},
			{"missing product name", func(v url.Values) { v.Set("line_items[0][price_data][product_data][name]", " ") }, "parameter_missing", "line_items[0][price_data][product_data][name]"},
			{"no line items", func(v url.Values) {
				for k := range v {
					if strings.HasPrefix(k, "line_items") {
						v.Del(k)
					}
				}
			}, "parameter_missing", "line_items"},
			{"expiry under 30 minutes", func(v url.Values) { v.Set("expires_at", strconv.FormatInt(time.Now().Add(29*time.Minute).Unix(), 10)) }, "parameter_invalid", "expires_at"},
			{"expiry over 24 hours", func(v url.Values) { v.Set("expires_at", strconv.FormatInt(time.Now().Add(25*time.Hour).Unix(), 10)) }, "parameter_invalid", "expires_at"},
			{"bad email", func(v url.Values) { v.Set("customer_email", "not-an-email") }, "email_invalid", "customer_email"},
			{"bad url", func(v url.Values) { v.Set("cancel_url", "/relative") }, "url_invalid", "cancel_url"},
		}
		for _, tc := range cases {
			f := sessionForm()
			tc.mutate(f)
			status, _, body := h.do(t, "POST", "/v1/checkout/sessions", f, nil)
			require.Equal(t, http.StatusBadRequest, status, tc.name)
			e := decodeErr(t, body)
			require.Equal(t, "invalid_request_error", e.Error.Type, tc.name)
			require.Equal(t, tc.code, e.Error.Code, tc.name)
			require.Equal(t, tc.param, e.Error.Param, tc.name)
		}
		f := sessionForm()
		f.Set("expires_at", strconv.FormatInt(time.Now().Add(31*time.Minute).Unix(), 10))
		status, _, body := h.do(t, "POST", "/v1/checkout/sessions", f, nil)
		require.Equal(t, http.StatusOK, status, string(body))
	})

	t.Run("idempotency", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "order-42"}
		s1, _, b1 := h.do(t, "POST", "/v1/checkout/sessions", sessionForm(), hdr)
		require.Equal(t, http.StatusOK, s1)
		s2, h2, b2 := h.do(t, "POST", "/v1/checkout/sessions", sessionForm(), hdr)
		require.Equal(t, http.StatusOK, s2)
		require.Equal(t, b1, b2)
		require.Equal(t, "true", h2.Get("Idempotent-Replayed"))

		f := sessionForm()
		f.Set("client_reference_id", "ord_other")
		s3, _, b3 := h.do(t, "POST", "/v1/checkout/sessions", f, hdr)
		require.Equal(t, http.StatusBadRequest, s3)
		require.Equal(t, "idempotency_error", decodeErr(t, b3).Error.Type)

		// A request refused by validation is not stored: the corrected retry goes through.
		bad := sessionForm()
		bad.Del("mode")
		hdr2 := map[string]string{"Idempotency-Key": "order-43"}
		s4, _, _ := h.do(t, "POST", "/v1/checkout/sessions", bad, hdr2)
		require.Equal(t, http.StatusBadRequest, s4)
		s5, _, _ := h.do(t, "POST", "/v1/checkout/sessions", sessionForm(), hdr2)
		require.Equal(t, http.StatusOK, s5)
	})

	t.Run("unrecognized URL and wrong body type", func(t *testing.T) {
		status, _, body := h.do(t, "GET", "/v1/customers", nil, nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Contains(t, decodeErr(t, body).Error.Message, "Unrecognized request URL")
		status, _, body = h.do(t, "POST", "/v1/refunds", nil, map[string]string{"Content-Type": "application/json"})
		require.Equal(t, http.StatusBadRequest, status) // no body: missing payment_intent
		require.Equal(t, "parameter_missing", decodeErr(t, body).Error.Code)
	})
}

func TestPrefixHandling(t *testing.T) {
	t.Parallel()
	sim := stripesim.New(stripesim.Config{Logger: slog.New(slog.DiscardHandler), SweepInterval: -1})
	t.Cleanup(sim.Close)
	// Full path, as with mux.Handle("/dev/stripe/", sim) …
	full := httptest.NewServer(sim)
	t.Cleanup(full.Close)
	// … and already stripped, as with http.StripPrefix.
	mux := http.NewServeMux()
	mux.Handle("/dev/stripe/", http.StripPrefix("/dev/stripe", sim))
	stripped := httptest.NewServer(mux)
	t.Cleanup(stripped.Close)
	for _, base := range []string{full.URL, stripped.URL} {
		req, _ := http.NewRequest("POST", base+"/dev/stripe/v1/checkout/sessions", strings.NewReader(sessionForm().Encode()))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var cs struct{ ID, URL string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&cs))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// Without PublicURL the page URL uses the request's origin.
		require.Equal(t, base+"/dev/stripe/checkout/"+cs.ID, cs.URL)
		page, err := http.Get(cs.URL)
		require.NoError(t, err)
		page.Body.Close()
		require.Equal(t, http.StatusOK, page.StatusCode)
	}
}

func TestHostedPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	cs := h.createSession(t)
	id := cs["id"].(string)
	pageURL := cs["url"].(string)

	resp, err := http.Get(pageURL)
	require.NoError(t, err)
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	page := string(html)
	require.Contains(t, page, "$53.50")
	require.Contains(t, page, "Pro plan")
	require.Contains(t, page, "A100 &lt;80GB&gt; (per hour)") // escaped
	require.Contains(t, page, "ada@example.com")
	require.Contains(t, page, `<label for="card">Card number</label>`)
	require.Contains(t, page, `name="card"`)
	require.Contains(t, page, `value=""`)
	require.Contains(t, page, "4242 4242 4242 4242")
	require.Contains(t, page, "4000 0000 0000 0002")
	require.Contains(t, page, `action="/dev/stripe/checkout/`+id+`/pay"`)
	require.Contains(t, page, `href="http://site.test/get-started/"`)

	payURL := h.base + "/dev/stripe/checkout/" + id + "/pay"
	postForm := func(card string) (*http.Response, string) {
		resp, err := noRedirect.PostForm(payURL, url.Values{"card": {card}})
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	postJSON := func(card string) (int, map[string]string) {
		b, _ := json.Marshal(map[string]string{"card": card})
		resp, err := http.Post(payURL, "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		resp.Body.Close()
		return resp.StatusCode, out
	}

	r, body := postForm("4000 0000 0000 0002")
	require.Equal(t, http.StatusPaymentRequired, r.StatusCode)
	require.Contains(t, body, "Your card was declined.")
	status, out := postJSON("4000000000000002")
	require.Equal(t, http.StatusPaymentRequired, status)
	require.Equal(t, "card_declined", out["error"])
	status, out = postJSON("5555 5555 5555 4444")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_card", out["error"])
	r, _ = postForm("1111")
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.Equal(t, "open", h.sim.Session(id).Status)
	require.Zero(t, h.hits.Load())

	r, _ = postForm("4242 4242 4242 4242")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "http://site.test/payment/success/?session_id="+id, r.Header.Get("Location"))
	require.Equal(t, int32(1), h.hits.Load()) // webhook answered before the redirect

	sess := h.sim.Session(id)
	require.Equal(t, "complete", sess.Status)
	require.Equal(t, "unpaid", sess.PaymentStatus)
	require.Nil(t, sess.URL)
	pi := h.sim.PaymentIntent(*sess.PaymentIntent)
	require.Equal(t, "requires_capture", pi.Status)
	require.Equal(t, "manual", pi.CaptureMethod)
	require.Equal(t, int64(5350), pi.Amount)
	require.Equal(t, int64(5350), pi.AmountCapturable)
	require.Equal(t, "ord_1", pi.Metadata["order_id"])

	// expand[]=payment_intent embeds the object, as stripe-go's AddExpand asks.
	st, _, raw := h.do(t, "GET", "/v1/checkout/sessions/"+id+"?expand[]=payment_intent", nil, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	var expanded struct {
		PaymentIntent struct{ ID, Object, Status string } `json:"payment_intent"`
	}
	require.NoError(t, json.Unmarshal(raw, &expanded))
	require.Equal(t, pi.ID, expanded.PaymentIntent.ID)
	require.Equal(t, "payment_intent", expanded.PaymentIntent.Object)
	require.Equal(t, "requires_capture", expanded.PaymentIntent.Status)

	status, out = postJSON("4242424242424242")
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "session_not_open", out["error"])
	r, body = postForm("4242424242424242")
	require.Equal(t, http.StatusConflict, r.StatusCode)
	require.Contains(t, body, "already paid")

	resp, err = http.Get(pageURL)
	require.NoError(t, err)
	html, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(html), "already paid")
	require.NotContains(t, string(html), `name="card"`)

	// The GET with the session id and JSON pay on a fresh session.
	cs2 := h.createSession(t)
	b, _ := json.Marshal(map[string]string{"card": "4242 4242 4242 4242"})
	resp, err = http.Post(h.base+"/dev/stripe/checkout/"+cs2["id"].(string)+"/pay", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "http://site.test/payment/success/?session_id="+cs2["id"].(string), out["redirect"])

	resp, err = http.Get(h.base + "/dev/stripe/checkout/cs_test_nope")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestClockDrivenTransitions(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	h := newHarness(t, func(c *stripesim.Config) { c.Now = clk.Now; c.SweepInterval = -1 })
	ctx := context.Background()

	open := h.createSession(t)["id"].(string)
	paid := h.createSession(t)["id"].(string)
	res, err := h.sim.Pay(ctx, paid, "4242424242424242")
	require.NoError(t, err)

	clk.Add(24*time.Hour + time.Second)
	status, _, body := h.do(t, "GET", "/v1/checkout/sessions/"+open, nil, nil)
	require.Equal(t, http.StatusOK, status)
	var cs map[string]any
	require.NoError(t, json.Unmarshal(body, &cs))
	require.Equal(t, "expired", cs["status"])
	require.Nil(t, cs["url"])
	require.Equal(t, "requires_capture", h.sim.PaymentIntent(res.PaymentIntentID).Status)

	clk.Add(stripesim.HoldLifetime)
	status, _, body = h.do(t, "GET", "/v1/payment_intents/"+res.PaymentIntentID, nil, nil)
	require.Equal(t, http.StatusOK, status)
	var pi map[string]any
	require.NoError(t, json.Unmarshal(body, &pi))
	require.Equal(t, "canceled", pi["status"])
	require.Equal(t, "automatic", pi["cancellation_reason"])

	var types []string
	for _, e := range h.sim.Events() {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"checkout.session.completed", "checkout.session.expired", "payment_intent.canceled"}, types)
}

func TestConcurrentPaymentsAndCaptures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	id := h.createSession(t)["id"].(string)

	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.sim.Pay(ctx, id, "4242424242424242"); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), ok.Load())

	piID := *h.sim.Session(id).PaymentIntent
	var statuses sync.Map
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := h.do(t, "POST", "/v1/payment_intents/"+piID+"/capture", url.Values{},
				map[string]string{"Idempotency-Key": "capture-1"})
			statuses.Store(i, status)
		}()
	}
	wg.Wait()
	statuses.Range(func(_, v any) bool { require.Equal(t, http.StatusOK, v); return true })
	require.Equal(t, 1, h.sim.CaptureCount(piID))
	replays := 0
	for _, c := range h.sim.Calls() {
		if c.Replayed {
			replays++
		}
	}
	require.Equal(t, 7, replays)
}

func TestCloseStopsRetries(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(hook.Close)
	sim := stripesim.New(stripesim.Config{WebhookURL: hook.URL, Logger: slog.New(slog.DiscardHandler),
		RetrySchedule: []time.Duration{time.Hour}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("POST", srv.URL+"/dev/stripe/v1/checkout/sessions", strings.NewReader(sessionForm().Encode()))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var cs struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cs))
	resp.Body.Close()

	res, err := sim.Pay(context.Background(), cs.ID, "4242424242424242")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, res.WebhookStatus)

	done := make(chan struct{})
	go func() { sim.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not stop the pending retry")
	}
	require.Equal(t, int32(1), hits.Load())
	require.False(t, sim.Events()[0].Delivered)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
