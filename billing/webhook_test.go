package billing_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"gpubroker"
	"gpubroker/billing"
)

func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

func eventJSON(t *testing.T, apiVersion string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": "evt_123", "object": "event", "api_version": apiVersion, "created": 1700000000,
		"type": "checkout.session.completed", "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": "cs_test_abc", "object": "checkout.session", "client_reference_id": "ord_9",
			"payment_intent": "pi_abc", "status": "complete",
		}},
	})
	require.NoError(t, err)
	return b
}

// raw is a body for the table below, signed by the test itself.
func raw(s string) []byte { return []byte(s) }

func TestParseWebhook(t *testing.T) {
	t.Parallel()
	valid := eventJSON(t, "2023-10-16")

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		ev, err := billing.ParseWebhook(valid, sign(valid, testSecret, time.Now()), testSecret)
		require.NoError(t, err)
		require.Equal(t, "evt_123", ev.ID)
		require.Equal(t, "checkout.session.completed", ev.Type)
		require.Equal(t, "2023-10-16", ev.APIVersion)
		require.Equal(t, time.Unix(1700000000, 0).UTC(), ev.Created)
		require.Equal(t, "cs_test_abc", ev.ObjectID)
		require.Equal(t, "ord_9", ev.ClientReferenceID)
		require.Equal(t, valid, ev.Payload)
	})

	t.Run("rotated secrets: any v1 matching is enough", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		old := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: valid, Secret: "whsec_old", Timestamp: now})
		header := sign(valid, testSecret, now) + ",v1=" + hex.EncodeToString(old.Signature)
		_, err := billing.ParseWebhook(valid, header, testSecret)
		require.NoError(t, err)
	})

	t.Run("odd client_reference_id is ignored", func(t *testing.T) {
		t.Parallel()
		for _, ref := range []string{`null`, `42`, `{"a":1}`} {
			body := raw(`{"id":"evt_1","type":"checkout.session.completed","created":1700000000,"data":{"object":{"id":"cs_1","client_reference_id":` + ref + `}}}`)
			ev, err := billing.ParseWebhook(body, sign(body, testSecret, time.Now()), testSecret)
			require.NoError(t, err, ref)
			require.Equal(t, "", ev.ClientReferenceID)
			require.Equal(t, "cs_1", ev.ObjectID)
			require.Equal(t, "", ev.APIVersion)
		}
	})

	t.Run("other api version is accepted on purpose", func(t *testing.T) {
		t.Parallel()
		body := eventJSON(t, "2024-06-20")
		ev, err := billing.ParseWebhook(body, sign(body, testSecret, time.Now()), testSecret)
		require.NoError(t, err)
		require.Equal(t, "2024-06-20", ev.APIVersion)
		require.Equal(t, "cs_test_abc", ev.ObjectID)
	})

	bad := []struct {
		name     string
		body     []byte
		header   string
		sentinel error
		cause    error
	}{
		{"forged signature", valid, sign(valid, "whsec_attacker", time.Now()), billing.ErrBadSignature, webhook.ErrNoValidSignature},
		{"tampered body", append([]byte(nil), valid[:len(valid)-1]...), sign(valid, testSecret, time.Now()), billing.ErrBadSignature, webhook.ErrNoValidSignature},
		{"ten minutes old", valid, sign(valid, testSecret, time.Now().Add(-10*time.Minute)), billing.ErrBadSignature, webhook.ErrTooOld},
		{"ten minutes ahead", valid, sign(valid, testSecret, time.Now().Add(10*time.Minute)), billing.ErrBadSignature, nil},
		{"missing header", valid, "", billing.ErrBadSignature, webhook.ErrNotSigned},
		{"malformed header", valid, "garbage", billing.ErrBadSignature, webhook.ErrInvalidHeader},
		{"no v1 signature", valid, "t=1700000000,v0=abc", billing.ErrBadSignature, webhook.ErrNoValidSignature},
		{"garbage body", []byte("not json at all"), sign([]byte("not json at all"), testSecret, time.Now()), billing.ErrBadPayload, nil},
		{"json but not an event", []byte(`{"hello":"world"}`), sign([]byte(`{"hello":"world"}`), testSecret, time.Now()), billing.ErrBadPayload, nil},
		{"truncated json", valid[:len(valid)-1], sign(valid[:len(valid)-1], testSecret, time.Now()), billing.ErrBadPayload, nil},
		{"numeric id", raw(`{"id":5,"type":"x","data":{"object":{}}}`), "", billing.ErrBadPayload, nil},
		{"no data.object", raw(`{"id":"evt_1","type":"x","data":{}}`), "", billing.ErrBadPayload, nil},
		{"null data.object", raw(`{"id":"evt_1","type":"x","data":{"object":null}}`), "", billing.ErrBadPayload, nil},
		{"array", raw(`[{"id":"evt_1"}]`), "", billing.ErrBadPayload, nil},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header := tc.header
			if header == "" && tc.sentinel == billing.ErrBadPayload {
				header = sign(tc.body, testSecret, time.Now())
			}
			ev, err := billing.ParseWebhook(tc.body, header, testSecret)
			require.Nil(t, ev)
			require.ErrorIs(t, err, tc.sentinel)
			if tc.cause != nil {
				require.ErrorIs(t, err, tc.cause)
			}
			// The handler can answer 400 from the domain code alone.
			require.Equal(t, gpubroker.EBADREQUEST, gpubroker.ErrorCode(err))
		})
	}

	t.Run("empty secret is a configuration error, not a 400", func(t *testing.T) {
		t.Parallel()
		_, err := billing.ParseWebhook(valid, sign(valid, "", time.Now()), "")
		require.Error(t, err)
		require.NotErrorIs(t, err, billing.ErrBadSignature)
		require.Equal(t, gpubroker.EINTERNAL, gpubroker.ErrorCode(err))
	})
}

func TestStandInWebhooksVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	_, res := e.paidSession(t, "ord_hooks")
	_, err := e.client.Capture(ctx, res.PaymentIntentID, "capture-ord_hooks")
	require.NoError(t, err)
	_, err = e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: res.PaymentIntentID, Key: "refund-ord_hooks", IdempotencyKey: "refund-ord_hooks"})
	require.NoError(t, err)
	expiring, err := e.client.CreateCheckout(ctx, checkoutParams("ord_hooks_2"))
	require.NoError(t, err)
	require.NoError(t, e.sim.ExpireSession(ctx, expiring.ID))

	want := []string{"checkout.session.completed", "payment_intent.succeeded", "charge.refunded", "checkout.session.expired"}
	require.Eventually(t, func() bool {
		for _, typ := range want {
			if len(e.hooks.ofType(typ)) != 1 {
				return false
			}
		}
		for _, ev := range e.sim.Events() {
			if !ev.Delivered { // recorded once the answer is back, after the receiver saw it
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, e.hooks.verifyFailures())

	// Every emitted event is a full Stripe event and was delivered once.
	events := e.sim.Events()
	require.Len(t, events, len(want))
	for _, ev := range events {
		var raw map[string]any
		require.NoError(t, json.Unmarshal(ev.Raw, &raw))
		require.Equal(t, "event", raw["object"])
		require.Equal(t, "2023-10-16", raw["api_version"])
		require.Equal(t, false, raw["livemode"])
		require.Contains(t, raw, "pending_webhooks")
		require.Contains(t, raw, "created")
		obj := raw["data"].(map[string]any)["object"].(map[string]any)
		require.NotEmpty(t, obj["id"])
		require.NotEmpty(t, obj["object"])
		require.True(t, ev.Delivered)
		require.Equal(t, 1, ev.Attempts)
		require.Equal(t, 1, e.hooks.deliveries(ev.ID))
	}
	refunded := e.hooks.ofType("charge.refunded")[0]
	var chEvent struct {
		Data struct {
			Object struct {
				Object         string `json:"object"`
				PaymentIntent  string `json:"payment_intent"`
				AmountRefunded int64  `json:"amount_refunded"`
				Refunded       bool   `json:"refunded"`
			} `json:"object"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(refunded.Payload, &chEvent))
	require.Equal(t, "charge", chEvent.Data.Object.Object)
	require.Equal(t, res.PaymentIntentID, chEvent.Data.Object.PaymentIntent)
	require.Equal(t, int64(checkoutTotal), chEvent.Data.Object.AmountRefunded)
	require.True(t, chEvent.Data.Object.Refunded)

	// Resend signs afresh and delivers the same event again (a duplicate to deduplicate).
	status, err := e.sim.Resend(ctx, res.EventID)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 2, e.hooks.deliveries(res.EventID))

	// Deliver sends arbitrary signed bytes, e.g. an event from a newer API version.
	status, err = e.sim.Deliver(ctx, eventJSON(t, "2099-01-01"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, e.hooks.verifyFailures())
}

func TestWebhookRetriedUntilAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{failFirst: 2, retry: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}})
	_, res := e.paidSession(t, "ord_retry")
	require.Equal(t, http.StatusInternalServerError, res.WebhookStatus) // first attempt, synchronous

	// Delivered is recorded by the stand-in once the 200 is back, after the receiver saw it.
	require.Eventually(t, func() bool { return e.sim.Events()[0].Delivered }, 5*time.Second, 5*time.Millisecond)
	require.Len(t, e.hooks.ofType("checkout.session.completed"), 1)
	require.Equal(t, 3, e.hooks.deliveries(res.EventID))
	ev := e.sim.Events()[0]
	require.Equal(t, res.EventID, ev.ID)
	require.True(t, ev.Delivered)
	require.Equal(t, 3, ev.Attempts)

	// No further attempts after success.
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 3, e.hooks.deliveries(res.EventID))
}
