package stripesim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/billing/stripesim"
)

// paidIntent creates and pays a session and returns its PaymentIntent id.
func (h *harness) paidIntent(t *testing.T) string {
	t.Helper()
	cs := h.createSession(t)
	res, err := h.sim.Pay(context.Background(), cs["id"].(string), stripesim.CardSucceeds)
	require.NoError(t, err)
	return res.PaymentIntentID
}

// Stripe stores the answer of a request under its idempotency key once the endpoint starts
// executing, 500s included, and replays it for the same key and parameters.
func TestStored500IsReplayed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	pi := h.paidIntent(t)
	path := "/v1/payment_intents/" + pi + "/capture"
	h.sim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/payment_intents/*/capture", Mode: stripesim.FailBefore, Times: 1})
	hdr := map[string]string{"Idempotency-Key": "capture-ord_1"}

	status, _, body := h.do(t, "POST", path, url.Values{}, hdr)
	require.Equal(t, http.StatusInternalServerError, status, string(body))
	require.Equal(t, "api_error", decodeErr(t, body).Error.Type)
	require.Equal(t, 0, h.sim.CaptureCount(pi))

	// The fault is spent, yet the same key replays the stored 500 without capturing.
	status, hh, body2 := h.do(t, "POST", path, url.Values{}, hdr)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Equal(t, "true", hh.Get("Idempotent-Replayed"))
	require.Equal(t, body, body2)
	require.Equal(t, 0, h.sim.CaptureCount(pi))
	require.Equal(t, "requires_capture", h.sim.PaymentIntent(pi).Status)

	// A new key captures once.
	status, _, body = h.do(t, "POST", path, url.Values{}, map[string]string{"Idempotency-Key": "capture-ord_1-2"})
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, 1, h.sim.CaptureCount(pi))
}

// FailAfter applies the action and answers 500 (stored); LoseAnswer applies it, stores the real
// answer and drops the connection, as a timeout would.
func TestFaultsAfterTheAction(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)

	pi := h.paidIntent(t)
	h.sim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/payment_intents/" + pi + "/capture", Mode: stripesim.FailAfter, Times: 1})
	hdr := map[string]string{"Idempotency-Key": "k-after"}
	status, _, _ := h.do(t, "POST", "/v1/payment_intents/"+pi+"/capture", url.Values{}, hdr)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Equal(t, 1, h.sim.CaptureCount(pi))
	require.Equal(t, "succeeded", h.sim.PaymentIntent(pi).Status)
	status, hh, _ := h.do(t, "POST", "/v1/payment_intents/"+pi+"/capture", url.Values{}, hdr)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Equal(t, "true", hh.Get("Idempotent-Replayed"))

	pi2 := h.paidIntent(t)
	h.sim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/payment_intents/*/cancel", Mode: stripesim.LoseAnswer, Times: 1})
	req, _ := http.NewRequest("POST", h.base+"/dev/stripe/v1/payment_intents/"+pi2+"/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", "k-lost")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	require.Error(t, err, "the answer never arrives whole")
	require.Equal(t, "canceled", h.sim.PaymentIntent(pi2).Status)
	status, hh, body := h.do(t, "POST", "/v1/payment_intents/"+pi2+"/cancel", nil, map[string]string{"Idempotency-Key": "k-lost"})
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "true", hh.Get("Idempotent-Replayed"))

	// Faults count down per matching call, and ClearFaults ends them.
	h.sim.InjectFault(stripesim.Fault{Method: "GET", Path: "/v1/payment_intents/*", Mode: stripesim.FailBefore, Times: 100})
	status, _, _ = h.do(t, "GET", "/v1/payment_intents/"+pi2, nil, nil)
	require.Equal(t, http.StatusInternalServerError, status)
	h.sim.ClearFaults()
	status, _, _ = h.do(t, "GET", "/v1/payment_intents/"+pi2, nil, nil)
	require.Equal(t, http.StatusOK, status)
}

// Refunds can be listed by PaymentIntent, newest first, with their metadata, so a caller can
// find the refund an earlier request made.
func TestListRefunds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	pi := h.paidIntent(t)
	status, _, body := h.do(t, "POST", "/v1/payment_intents/"+pi+"/capture", url.Values{}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	status, _, body = h.do(t, "POST", "/v1/refunds", url.Values{"payment_intent": {pi}, "amount": {"100"}, "metadata[gpubroker_key]": {"refund-ord_1"}}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	status, _, body = h.do(t, "GET", "/v1/refunds?payment_intent="+pi, nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var list struct {
		Object  string `json:"object"`
		HasMore bool   `json:"has_more"`
		Data    []struct {
			ID            string            `json:"id"`
			PaymentIntent string            `json:"payment_intent"`
			Metadata      map[string]string `json:"metadata"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Equal(t, "list", list.Object)
	require.Len(t, list.Data, 1)
	require.Equal(t, "refund-ord_1", list.Data[0].Metadata["gpubroker_key"])
	status, _, body = h.do(t, "GET", "/v1/refunds?payment_intent=pi_nope", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &list))
	require.Empty(t, list.Data)
	status, _, _ = h.do(t, "GET", "/v1/refunds?colour=red", nil, nil)
	require.Equal(t, http.StatusBadRequest, status)
}

// The hold's deadline is on the charge: expand[]=latest_charge shows
// payment_method_details.card.capture_before, the authorization plus the hold lifetime.
func TestCaptureBeforeOnExpandedCharge(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h := newHarness(t, func(cfg *stripesim.Config) { cfg.Now = c.Now; cfg.SweepInterval = -1 })
	pi := h.paidIntent(t)
	status, _, body := h.do(t, "GET", "/v1/payment_intents/"+pi+"?expand[]=latest_charge", nil, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var got struct {
		LatestCharge struct {
			ID                   string `json:"id"`
			PaymentMethodDetails struct {
				Card struct {
					CaptureBefore int64 `json:"capture_before"`
				} `json:"card"`
			} `json:"payment_method_details"`
		} `json:"latest_charge"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.NotEmpty(t, got.LatestCharge.ID)
	require.Equal(t, c.Now().Add(7*24*time.Hour).Unix(), got.LatestCharge.PaymentMethodDetails.Card.CaptureBefore)
	status, _, _ = h.do(t, "GET", "/v1/payment_intents/"+pi+"?expand[]=customer", nil, nil)
	require.Equal(t, http.StatusBadRequest, status)

	// A shorter hold (a Visa merchant-initiated one) lapses at its own deadline.
	h.sim.SetHoldLifetime(4*24*time.Hour + 18*time.Hour)
	short := h.paidIntent(t)
	c.Add(4*24*time.Hour + 18*time.Hour)
	status, _, body = h.do(t, "GET", "/v1/payment_intents/"+short, nil, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"status": "canceled"`)
	require.Equal(t, "requires_capture", h.sim.PaymentIntent(pi).Status, "the 7-day hold is still alive")
}

// GPU Broker sells card holds only: a session must ask for payment_method_types=[card].
func TestSessionMustBeCardOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	f := sessionForm()
	f.Del("payment_method_types[0]")
	status, _, body := h.do(t, "POST", "/v1/checkout/sessions", f, nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
	require.Equal(t, "payment_method_types", decodeErr(t, body).Error.Param)
	f.Set("payment_method_types[0]", "card")
	f.Set("payment_method_types[1]", "klarna")
	status, _, body = h.do(t, "POST", "/v1/checkout/sessions", f, nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
	require.Equal(t, "payment_method_types[1]", decodeErr(t, body).Error.Param)
}

// Aimed faults: a fault can be aimed at one customer's call by its body's parameters, reports
// whether it struck, and a timeout (Hang) acts, stores the answer and says nothing until the
// caller gives up. A capture asked again of a captured PaymentIntent is refused, and counted.
func TestAimedFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	mine, other := h.paidIntent(t), h.paidIntent(t)
	for _, pi := range []string{mine, other} {
		status, _, body := h.do(t, "POST", "/v1/payment_intents/"+pi+"/capture", url.Values{}, nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	struck := 0
	armed := h.sim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/refunds", Form: map[string]string{"payment_intent": mine},
		Mode: stripesim.Hang, Times: 1, Strike: func() { struck++ }})
	status, _, body := h.do(t, "POST", "/v1/refunds", url.Values{"payment_intent": {other}, "amount": {"100"}}, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Zero(t, armed.Struck(), "aimed at another customer's refund")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.base+"/dev/stripe/v1/refunds", strings.NewReader("payment_intent="+mine+"&amount=100"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", "k-hang")
	_, err := http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no answer before the caller gives up")
	require.Equal(t, 1, armed.Struck())
	require.Equal(t, 1, struck, "Strike ran once the refund was made")
	require.Equal(t, 1, h.sim.RefundCount(mine), "Stripe refunded although the caller never heard")
	status, hh, body := h.do(t, "POST", "/v1/refunds", url.Values{"payment_intent": {mine}, "amount": {"100"}}, map[string]string{"Idempotency-Key": "k-hang"})
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "true", hh.Get("Idempotent-Replayed"))
	require.Equal(t, 1, h.sim.RefundCount(mine))

	require.Zero(t, h.sim.CapturesRefused(mine))
	status, _, _ = h.do(t, "POST", "/v1/payment_intents/"+mine+"/capture", url.Values{}, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, 1, h.sim.CapturesRefused(mine), "a blind second capture is seen")
	require.Equal(t, 1, h.sim.CaptureCount(mine))
}
