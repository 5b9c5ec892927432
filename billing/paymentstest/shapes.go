package paymentstest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// fixturePI is the PaymentIntent a stateless server is asked about when its session fixture
// names none.
const fixturePI = "pi_paymentstestfixture"

// hold creates a checkout that only authorizes and pays it, returning the PaymentIntent id.
// On a stateless server nothing is paid: the id is the one the session fixture names.
func hold(t *testing.T, s Subject, p gpubroker.CheckoutParams) string {
	t.Helper()
	ctx := context.Background()
	cs, err := s.Payments.CreateCheckout(ctx, p)
	require.NoError(t, err, "create checkout")
	if s.stateless() {
		if cs.PaymentIntentID != "" {
			return cs.PaymentIntentID
		}
		return fixturePI
	}
	require.NoError(t, s.Pay(ctx, cs.ID), "pay session %s", cs.ID)
	cs, err = s.Payments.GetCheckout(ctx, cs.ID)
	require.NoError(t, err, "get paid checkout")
	require.NotEmpty(t, cs.PaymentIntentID, "a paid session names its PaymentIntent")
	return cs.PaymentIntentID
}

// captured returns a captured PaymentIntent (on a stateless server, the fixture's).
func captured(t *testing.T, s Subject) string {
	t.Helper()
	id := hold(t, s, checkoutParams(unique("ord_")))
	if !s.stateless() {
		_, err := s.Payments.Capture(context.Background(), id, unique("capture-"))
		require.NoError(t, err, "capture")
	}
	return id
}

// Shapes checks request and answer shapes: every method, called with valid arguments, returns
// without error what the app reads, populated and well-formed; invalid arguments come back as
// the domain errors the jobs expect. Against a stateless server only the shapes are checked;
// against a stateful one, also that the answers reflect the requests.
func Shapes(t *testing.T, h Harness) {
	t.Run("Checkout", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := h.New(t)
		order := unique("ord_")
		created := time.Now()
		cs, err := s.Payments.CreateCheckout(ctx, checkoutParams(order))
		require.NoError(t, err)
		checkSession(t, cs)
		if !s.stateless() {
			checkOurSession(t, cs, order, created)
			require.Equal(t, gpubroker.SessionOpen, cs.Status)
			require.Equal(t, "unpaid", cs.PaymentStatus)
			require.Empty(t, cs.PaymentIntentID, "since API 2022-08-01 the PaymentIntent is made when the session is paid")
		}

		got, err := s.Payments.GetCheckout(ctx, cs.ID)
		require.NoError(t, err)
		checkSession(t, got)
		if !s.stateless() {
			require.Equal(t, *cs, *got, "GetCheckout answers the session CreateCheckout made")
		}

		exp, err := s.Payments.ExpireCheckout(ctx, cs.ID)
		require.NoError(t, err)
		checkSession(t, exp)
		if !s.stateless() {
			require.Equal(t, cs.ID, exp.ID)
			require.Equal(t, gpubroker.SessionExpired, exp.Status)
		}
	})

	t.Run("ExtensionCheckout", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		p := checkoutParams(unique("ord_"))
		p.AutomaticCapture = true
		p.ExtensionID = unique("ext_")
		created := time.Now()
		cs, err := s.Payments.CreateCheckout(context.Background(), p)
		require.NoError(t, err)
		checkSession(t, cs)
		if !s.stateless() {
			checkOurSession(t, cs, p.ExtensionID, created)
		}
	})

	t.Run("PaymentIntent", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := h.New(t)
		id := hold(t, s, checkoutParams(unique("ord_")))

		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		checkPI(t, pi)
		if !s.stateless() {
			require.Equal(t, id, pi.ID)
			require.Equal(t, gpubroker.PIRequiresCapture, pi.Status)
			require.Equal(t, int64(total), pi.Amount)
			require.Equal(t, gpubroker.Currency, pi.Currency)
			require.False(t, pi.CaptureBefore.IsZero(), "a card hold says when it lapses (capture_before)")
			require.False(t, pi.AuthorizedAt.IsZero(), "an authorized PaymentIntent has a charge")
			require.NotEmpty(t, pi.ReceiptURL, "the charge has a receipt_url")
		}

		pi, err = s.Payments.Capture(ctx, id, unique("capture-"))
		require.NoError(t, err)
		checkPI(t, pi)
		if !s.stateless() {
			require.Equal(t, id, pi.ID)
			require.Equal(t, gpubroker.PISucceeded, pi.Status)
		}

		key := unique("refund-")
		r, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 100, Key: key, IdempotencyKey: key, Reason: "requested_by_customer"})
		require.NoError(t, err)
		checkRefund(t, r)
		if !s.stateless() {
			require.Equal(t, int64(100), r.Amount)
			require.Equal(t, key, r.Key, "the refund carries its key (metadata[gpubroker_key])")
		}

		found, err := s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		if found != nil {
			checkRefund(t, found)
		}
		if !s.stateless() {
			require.NotNil(t, found, "FindRefund finds the refund made under its key")
			require.Equal(t, r.ID, found.ID)
		}
		none, err := s.Payments.FindRefund(ctx, id, unique("refund-none-"))
		require.NoError(t, err)
		require.Nil(t, none, "no refund was made under this key")

		key = unique("refund-")
		r, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Key: key, IdempotencyKey: key})
		require.NoError(t, err, "refund the rest (no amount)")
		checkRefund(t, r)
		if !s.stateless() {
			require.Equal(t, int64(total-100), r.Amount, "no amount refunds what remains")
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := h.New(t)
		for _, reason := range []string{"abandoned", ""} {
			id := hold(t, s, checkoutParams(unique("ord_")))
			pi, err := s.Payments.Cancel(ctx, id, reason, unique("release-"))
			require.NoError(t, err, "cancel with reason %q", reason)
			checkPI(t, pi)
			if !s.stateless() {
				require.Equal(t, id, pi.ID)
				require.Equal(t, gpubroker.PICanceled, pi.Status)
				require.Equal(t, reason, pi.CancellationReason)
			}
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := h.New(t)

		p := checkoutParams(unique("ord_"))
		p.LineItems = nil
		_, err := s.Payments.CreateCheckout(ctx, p)
		requireCode(t, gpubroker.EINVALID, err, "a checkout without line items")

		id := hold(t, s, checkoutParams(unique("ord_")))
		_, err = s.Payments.Cancel(ctx, id, "bored", unique("release-"))
		requireCode(t, gpubroker.EINVALID, err, "a cancellation reason Stripe does not know")

		id = captured(t, s)
		key := unique("refund-")
		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Key: key, IdempotencyKey: key, Reason: "bored"})
		requireCode(t, gpubroker.EINVALID, err, "a refund reason Stripe does not know")
	})

	t.Run("UnknownObjects", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s := h.New(t)
		if s.stateless() {
			t.Skip("a stateless server answers a fixture for any id")
		}
		_, err := s.Payments.GetCheckout(ctx, "cs_test_paymentstestmissing")
		requireCode(t, gpubroker.ENOTFOUND, err, "get an unknown session")
		_, err = s.Payments.ExpireCheckout(ctx, "cs_test_paymentstestmissing")
		requireCode(t, gpubroker.ENOTFOUND, err, "expire an unknown session")
		_, err = s.Payments.GetPaymentIntent(ctx, "pi_paymentstestmissing")
		requireCode(t, gpubroker.ENOTFOUND, err, "get an unknown PaymentIntent")
		_, err = s.Payments.Capture(ctx, "pi_paymentstestmissing", unique("capture-"))
		requireCode(t, gpubroker.ENOTFOUND, err, "capture an unknown PaymentIntent")
		_, err = s.Payments.Cancel(ctx, "pi_paymentstestmissing", "", unique("release-"))
		requireCode(t, gpubroker.ENOTFOUND, err, "cancel an unknown PaymentIntent")
		key := unique("refund-")
		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: "pi_paymentstestmissing", Key: key, IdempotencyKey: key})
		requireCode(t, gpubroker.ENOTFOUND, err, "refund an unknown PaymentIntent")
	})
}
