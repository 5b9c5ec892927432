package billing_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"gpubroker"
	"gpubroker/billing"
	"gpubroker/billing/stripesim"
)

func TestCheckoutAuthorizeCaptureRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()

	before := time.Now()
	cs, err := e.client.CreateCheckout(ctx, checkoutParams("ord_1"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cs.ID, "cs_test_"), cs.ID)
	require.Equal(t, e.apiURL+"/dev/stripe/checkout/"+cs.ID, cs.URL)
	require.Equal(t, gpubroker.SessionOpen, cs.Status)
	require.Equal(t, int64(checkoutTotal), cs.AmountTotal)
	require.Equal(t, "usd", cs.Currency)
	require.Equal(t, "ord_1", cs.ClientReferenceID)
	require.Empty(t, cs.PaymentIntentID)
	// Asked for exactly 30 minutes; moved to 31 so Stripe's clock cannot refuse it.
	require.WithinRange(t, cs.ExpiresAt, before.Add(30*time.Minute), time.Now().Add(32*time.Minute))

	simCS := e.sim.Session(cs.ID)
	require.NotNil(t, simCS)
	require.Equal(t, "manual", simCS.CaptureMethod)
	require.Equal(t, "ord_1", simCS.Metadata["order_id"])
	require.Equal(t, "ada@example.com", *simCS.CustomerEmail)
	require.Len(t, simCS.LineItems, 2)

	res, err := e.sim.Pay(ctx, cs.ID, "4242 4242 4242 4242")
	require.NoError(t, err)
	require.Equal(t, "http://localhost:8080/payment/success/?session_id="+cs.ID, res.RedirectURL)
	require.Equal(t, http.StatusOK, res.WebhookStatus)

	// The webhook was answered before Pay returned.
	completed := e.hooks.ofType("checkout.session.completed")
	require.Len(t, completed, 1)
	require.Equal(t, cs.ID, completed[0].ObjectID)
	require.Equal(t, "ord_1", completed[0].ClientReferenceID)
	require.Equal(t, stripe.APIVersion, completed[0].APIVersion)

	got, err := e.client.GetCheckout(ctx, cs.ID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.SessionComplete, got.Status)
	require.Equal(t, "unpaid", got.PaymentStatus) // manual capture: authorized, not paid
	require.Equal(t, res.PaymentIntentID, got.PaymentIntentID)
	require.True(t, strings.HasPrefix(got.PaymentIntentID, "pi_"), got.PaymentIntentID)

	pi, err := e.client.GetPaymentIntent(ctx, got.PaymentIntentID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.PIRequiresCapture, pi.Status)
	require.Equal(t, int64(checkoutTotal), pi.Amount)
	require.Equal(t, int64(checkoutTotal), pi.AmountCapturable)
	require.Equal(t, "ord_1", e.sim.PaymentIntent(pi.ID).Metadata["order_id"])

	// A retried capture job with the same key captures once and sees success both times.
	for range 2 {
		pi, err = e.client.Capture(ctx, pi.ID, "capture-ord_1")
		require.NoError(t, err)
		require.Equal(t, gpubroker.PISucceeded, pi.Status)
		require.Equal(t, int64(checkoutTotal), pi.AmountReceived)
	}
	require.Equal(t, 1, e.sim.CaptureCount(pi.ID))
	var captureCalls []stripesim.Call
	for _, c := range e.sim.Calls() {
		if strings.HasSuffix(c.Path, "/capture") {
			captureCalls = append(captureCalls, c)
		}
	}
	require.Len(t, captureCalls, 2)
	require.Equal(t, "capture-ord_1", captureCalls[0].IdempotencyKey)
	require.False(t, captureCalls[0].Replayed)
	require.True(t, captureCalls[1].Replayed)

	// Another key (a new Deploy after success): Stripe refuses, we report the state.
	cur, err := e.client.Capture(ctx, pi.ID, "capture-ord_1-again")
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.NotNil(t, cur)
	require.Equal(t, gpubroker.PISucceeded, cur.Status)
	var se *billing.StateError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "payment_intent_unexpected_state", se.Code)
	require.Equal(t, gpubroker.PISucceeded, se.PaymentIntent.Status)
	require.Equal(t, 1, e.sim.CaptureCount(pi.ID))

	// After capture the hold cannot be released.
	cur, err = e.client.Cancel(ctx, pi.ID, "abandoned", "release-ord_1")
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.PISucceeded, cur.Status)

	// A retried refund job refunds once.
	r1, err := e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: pi.ID, Key: "refund-ord_1", IdempotencyKey: "refund-ord_1"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(r1.ID, "re_"), r1.ID)
	require.Equal(t, int64(checkoutTotal), r1.Amount)
	require.Equal(t, "succeeded", r1.Status)
	r2, err := e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: pi.ID, Key: "refund-ord_1", IdempotencyKey: "refund-ord_1"})
	require.NoError(t, err)
	require.Equal(t, r1.ID, r2.ID)
	require.Equal(t, 1, e.sim.RefundCount(pi.ID))

	// A refund with a new key finds the charge already refunded.
	r3, err := e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: pi.ID, Key: "refund-ord_1-again", IdempotencyKey: "refund-ord_1-again"})
	require.Nil(t, r3)
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.ErrorAs(t, err, &se)
	require.Equal(t, "charge_already_refunded", se.Code)
	require.Equal(t, gpubroker.PISucceeded, se.PaymentIntent.Status)
	require.Equal(t, 1, e.sim.RefundCount(pi.ID))

	// Events caused by API calls are delivered asynchronously, like Stripe's.
	require.Eventually(t, func() bool {
		return len(e.hooks.ofType("payment_intent.succeeded")) == 1 && len(e.hooks.ofType("charge.refunded")) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, pi.ID, e.hooks.ofType("payment_intent.succeeded")[0].ObjectID)
	require.Empty(t, e.hooks.verifyFailures())
}

func TestLapsedHoldCannotBeCaptured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	_, res := e.paidSession(t, "ord_lapse")

	require.NoError(t, e.sim.LapseHold(ctx, res.PaymentIntentID))
	canceled := e.hooks.ofType("payment_intent.canceled")
	require.Len(t, canceled, 1) // delivered before LapseHold returned
	require.Equal(t, res.PaymentIntentID, canceled[0].ObjectID)

	pi, err := e.client.Capture(ctx, res.PaymentIntentID, "capture-ord_lapse")
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.PICanceled, pi.Status)
	require.Equal(t, "automatic", pi.CancellationReason)
	require.Equal(t, 0, e.sim.CaptureCount(res.PaymentIntentID))

	// Releasing a lapsed hold is a state error too, not a failure to retry.
	pi, err = e.client.Cancel(ctx, res.PaymentIntentID, "abandoned", "release-ord_lapse")
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.PICanceled, pi.Status)

	// Refunding an uncaptured (here cancelled) payment is refused with the state.
	_, err = e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: res.PaymentIntentID, Key: "refund-ord_lapse", IdempotencyKey: "refund-ord_lapse"})
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
}

func TestCancelReleasesHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	_, res := e.paidSession(t, "ord_release")

	for range 2 {
		pi, err := e.client.Cancel(ctx, res.PaymentIntentID, "abandoned", "release-ord_release")
		require.NoError(t, err)
		require.Equal(t, gpubroker.PICanceled, pi.Status)
		require.Equal(t, "abandoned", pi.CancellationReason)
		require.Zero(t, pi.AmountCapturable)
	}
	require.Eventually(t, func() bool { return len(e.hooks.ofType("payment_intent.canceled")) == 1 },
		5*time.Second, 10*time.Millisecond)

	pi, err := e.client.Capture(ctx, res.PaymentIntentID, "capture-ord_release")
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.PICanceled, pi.Status)
}

func TestDeclinedCardDoesNotAuthorize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	cs, err := e.client.CreateCheckout(ctx, checkoutParams("ord_decline"))
	require.NoError(t, err)

	_, err = e.sim.Pay(ctx, cs.ID, "4000 0000 0000 0002")
	require.ErrorIs(t, err, stripesim.ErrCardDeclined)
	_, err = e.sim.Pay(ctx, cs.ID, "1234 5678 9012 3456")
	require.ErrorIs(t, err, stripesim.ErrInvalidCard)

	got, err := e.client.GetCheckout(ctx, cs.ID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.SessionOpen, got.Status)
	require.Empty(t, got.PaymentIntentID)
	require.Empty(t, e.hooks.ofType("checkout.session.completed"))

	// The customer can try another card on the same session.
	res, err := e.sim.Pay(ctx, cs.ID, "4242424242424242")
	require.NoError(t, err)
	pi, err := e.client.GetPaymentIntent(ctx, res.PaymentIntentID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.PIRequiresCapture, pi.Status)
}

func TestCreateCheckoutIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	p := checkoutParams("ord_idem")

	a, err := e.client.CreateCheckout(ctx, p)
	require.NoError(t, err)
	b, err := e.client.CreateCheckout(ctx, p)
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID)
	require.Equal(t, a.URL, b.URL)

	// Same key, different body: a bug in the caller, reported as a permanent conflict.
	p.LineItems[1].Quantity = 4
	_, err = e.client.CreateCheckout(ctx, p)
	require.Error(t, err)
	require.Equal(t, gpubroker.ECONFLICT, gpubroker.ErrorCode(err))
	require.Equal(t, "idempotency_key_reused", gpubroker.ErrorReason(err))
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, stripe.ErrorTypeIdempotency, se.Type)

	// Another key is another session.
	p.IdempotencyKey = "ord_idem-2"
	c, err := e.client.CreateCheckout(ctx, p)
	require.NoError(t, err)
	require.NotEqual(t, a.ID, c.ID)
	require.Equal(t, int64(4900+4*150), c.AmountTotal)
}

// A caller retrying a create after a lost answer sends the same params a moment later. Stripe
// compares the bodies under the key, so the expiry the client computes from them must not
// move with the clock: a body one second different is refused as a reused key.
func TestCreateCheckoutRetryIsTheSameRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	// Ten seconds into a minute that has not begun: the retry two seconds later is in the same
	// minute, and the simulator (on the real clock) still sees every expiry in its window.
	now := time.Now().Truncate(time.Minute).Add(time.Minute + 10*time.Second)
	billing.SetClock(e.client, func() time.Time { return now })

	for _, tc := range []struct {
		name   string
		expiry time.Duration
	}{
		{"valid", gpubroker.CheckoutLifetime},
		{"raised", 10 * time.Minute},
		{"lowered", 30 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := checkoutParams("ord_retry_" + tc.name)
			p.ExpiresAt = now.Add(tc.expiry)
			a, err := e.client.CreateCheckout(ctx, p)
			require.NoError(t, err)

			now = now.Add(2 * time.Second) // the retry comes after the second has turned
			b, err := e.client.CreateCheckout(ctx, p)
			require.NoError(t, err)
			require.Equal(t, a.ID, b.ID)
			require.Equal(t, a.ExpiresAt, b.ExpiresAt)
			lifetime := a.ExpiresAt.Sub(now)
			require.True(t, lifetime > 30*time.Minute && lifetime < 24*time.Hour, "lifetime %v", lifetime)
		})
	}
}

func TestExpireCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	cs, err := e.client.CreateCheckout(ctx, checkoutParams("ord_expire"))
	require.NoError(t, err)

	got, err := e.client.ExpireCheckout(ctx, cs.ID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.SessionExpired, got.Status)
	require.Empty(t, got.URL) // Stripe clears url once the session is not open
	require.Eventually(t, func() bool { return len(e.hooks.ofType("checkout.session.expired")) == 1 },
		5*time.Second, 10*time.Millisecond)
	require.Equal(t, "ord_expire", e.hooks.ofType("checkout.session.expired")[0].ClientReferenceID)

	_, err = e.sim.Pay(ctx, cs.ID, "4242424242424242")
	require.ErrorIs(t, err, stripesim.ErrSessionNotOpen)

	// Expiring again reports the state instead of failing.
	got, err = e.client.ExpireCheckout(ctx, cs.ID)
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.SessionExpired, got.Status)

	// A completed session cannot be expired: the caller learns it was paid.
	paid, _ := e.paidSession(t, "ord_expire_paid")
	got, err = e.client.ExpireCheckout(ctx, paid.ID)
	require.ErrorIs(t, err, gpubroker.ErrPaymentState)
	require.Equal(t, gpubroker.SessionComplete, got.Status)
	require.NotEmpty(t, got.PaymentIntentID)
	var se *billing.StateError
	require.ErrorAs(t, err, &se)
	require.Equal(t, gpubroker.SessionComplete, se.Session.Status)
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()

	_, err := e.client.GetPaymentIntent(ctx, "pi_doesnotexist")
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))
	_, err = e.client.GetCheckout(ctx, "cs_test_doesnotexist")
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))
	_, err = e.client.Capture(ctx, "pi_doesnotexist", "k1")
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))
	require.NotErrorIs(t, err, gpubroker.ErrPaymentState)
	_, err = e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: "pi_doesnotexist", Key: "k2", IdempotencyKey: "k2"})
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))

	// Below Stripe's minimum charge: a permanent invalid request.
	p := checkoutParams("ord_small")
	p.LineItems = []gpubroker.LineItem{{Name: "Tiny", UnitAmountCent: 10, Quantity: 1}}
	_, err = e.client.CreateCheckout(ctx, p)
	require.Equal(t, gpubroker.EINVALID, gpubroker.ErrorCode(err))
	require.Equal(t, "amount_too_small", gpubroker.ErrorReason(err))

	p.LineItems = nil
	_, err = e.client.CreateCheckout(ctx, p)
	require.Equal(t, gpubroker.EINVALID, gpubroker.ErrorCode(err))

	// A wrong key is a configuration problem: transient, so jobs retry once it is fixed.
	bad := billing.New(billing.Config{SecretKey: "sk_live_nope", APIBase: e.apiURL + "/dev/stripe"})
	_, err = bad.GetPaymentIntent(ctx, "pi_x")
	require.Error(t, err)
	require.Equal(t, gpubroker.EINTERNAL, gpubroker.ErrorCode(err))
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusUnauthorized, se.HTTPStatusCode)
}

func TestTransientErrorsStayRetryable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	status := map[string]int{"/v1/payment_intents/pi_500": 500, "/v1/payment_intents/pi_429": 429, "/v1/payment_intents/pi_503": 503}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status[r.URL.Path])
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"boom"}}`))
	}))
	t.Cleanup(srv.Close)
	c := billing.New(billing.Config{SecretKey: testKey, APIBase: srv.URL})
	for path := range status {
		_, err := c.GetPaymentIntent(context.Background(), strings.TrimPrefix(path, "/v1/payment_intents/"))
		require.Error(t, err, path)
		require.Equal(t, gpubroker.EINTERNAL, gpubroker.ErrorCode(err), path) // not a domain error
		require.NotErrorIs(t, err, gpubroker.ErrPaymentState)
	}
	require.Equal(t, int32(3), calls.Load()) // MaxNetworkRetries 0: the job retries, not stripe-go

	// Network failure.
	dead := billing.New(billing.Config{SecretKey: testKey, APIBase: "http://127.0.0.1:1"})
	_, err := dead.Capture(context.Background(), "pi_x", "k")
	require.Error(t, err)
	require.Equal(t, gpubroker.EINTERNAL, gpubroker.ErrorCode(err))
	require.False(t, errors.Is(err, gpubroker.ErrPaymentState))
}
