package paymentstest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// maxHold is the longest a card authorization lasts before it must be captured (online card
// payments: 7 days), with a minute of slack for the clocks.
const maxHold = 7*24*time.Hour + time.Minute

// Behaviour checks what the jobs rely on Stripe doing, against a server that keeps state:
// holds, capture, stored 5xx replayed under their idempotency key, refunds never above the
// capture, cancellation and FindRefund. The harness must give Pay and Fail500.
func Behaviour(t *testing.T, h Harness) {
	subject := func(t *testing.T) Subject {
		t.Helper()
		s := h.New(t)
		if s.Pay == nil || s.Fail500 == nil {
			t.Fatal("paymentstest.Behaviour needs a stateful server: the harness must give Pay and Fail500")
		}
		return s
	}
	ctx := context.Background()

	t.Run("AuthorizedHold", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		before := time.Now().Add(-time.Second)
		p := checkoutParams(unique("ord_"))
		cs, err := s.Payments.CreateCheckout(ctx, p)
		require.NoError(t, err)
		require.NoError(t, s.Pay(ctx, cs.ID))

		cs, err = s.Payments.GetCheckout(ctx, cs.ID)
		require.NoError(t, err)
		checkSession(t, cs)
		require.Equal(t, gpubroker.SessionComplete, cs.Status)
		require.Equal(t, "unpaid", cs.PaymentStatus, "Stripe reports a session whose payment is only authorized as unpaid")
		requireID(t, "pi_", cs.PaymentIntentID, "a paid session's payment_intent")

		pi, err := s.Payments.GetPaymentIntent(ctx, cs.PaymentIntentID)
		require.NoError(t, err)
		checkPI(t, pi)
		require.Equal(t, gpubroker.PIRequiresCapture, pi.Status)
		require.Equal(t, int64(total), pi.Amount)
		require.Equal(t, int64(total), pi.AmountCapturable, "the whole amount is held")
		require.Zero(t, pi.AmountReceived, "nothing is received before capture")
		require.WithinRange(t, pi.AuthorizedAt, before.Truncate(time.Second), time.Now().Add(time.Second), "authorized when paid")
		require.WithinRange(t, pi.CaptureBefore, time.Now(), time.Now().Add(maxHold), "capture_before: the hold lapses within 7 days")
	})

	t.Run("Capture", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := hold(t, s, checkoutParams(unique("ord_")))
		key := unique("capture-")
		pi, err := s.Payments.Capture(ctx, id, key)
		require.NoError(t, err)
		checkPI(t, pi)
		require.Equal(t, gpubroker.PISucceeded, pi.Status)
		require.Equal(t, int64(total), pi.AmountReceived, "capture takes the full authorized amount")
		require.Zero(t, pi.AmountCapturable)

		got, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PISucceeded, got.Status)
		require.Equal(t, int64(total), got.AmountReceived)
		require.Zero(t, got.AmountRefunded)

		again, err := s.Payments.Capture(ctx, id, key)
		require.NoError(t, err, "the same key replays the stored answer")
		require.Equal(t, pi.Status, again.Status)
		require.Equal(t, pi.AmountReceived, again.AmountReceived)

		cur, err := s.Payments.Capture(ctx, id, unique("capture-"))
		requireState(t, err, "capturing a captured PaymentIntent")
		require.NotNil(t, cur, "a state error comes with the current PaymentIntent")
		require.Equal(t, gpubroker.PISucceeded, cur.Status)
		require.Equal(t, int64(total), cur.AmountReceived, "no second capture")
	})

	t.Run("AutomaticCapture", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		p := checkoutParams(unique("ord_"))
		p.AutomaticCapture, p.ExtensionID = true, unique("ext_")
		cs, err := s.Payments.CreateCheckout(ctx, p)
		require.NoError(t, err)
		require.NoError(t, s.Pay(ctx, cs.ID))
		cs, err = s.Payments.GetCheckout(ctx, cs.ID)
		require.NoError(t, err)
		require.Equal(t, gpubroker.SessionComplete, cs.Status)
		require.Equal(t, "paid", cs.PaymentStatus)
		pi, err := s.Payments.GetPaymentIntent(ctx, cs.PaymentIntentID)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PISucceeded, pi.Status, "an extension is taken at once")
		require.Equal(t, int64(total), pi.AmountReceived)
		_, err = s.Payments.Capture(ctx, pi.ID, unique("capture-"))
		requireState(t, err, "capturing an automatically captured PaymentIntent")
	})

	t.Run("Stored5xxCapture", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := hold(t, s, checkoutParams(unique("ord_")))
		key := unique("capture-")
		s.Fail500("POST", "/v1/payment_intents/*/capture")
		_, err := s.Payments.Capture(ctx, id, key)
		requireTransient(t, err, "a 500")
		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PIRequiresCapture, pi.Status, "the 500 came before acting")

		_, err = s.Payments.Capture(ctx, id, key)
		requireTransient(t, err, "the same key replays the stored 500")
		pi, err = s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PIRequiresCapture, pi.Status, "a replay does not act")

		pi, err = s.Payments.Capture(ctx, id, gpubroker.RetryKey(key, 1, 2))
		require.NoError(t, err, "a new key acts")
		require.Equal(t, gpubroker.PISucceeded, pi.Status)
		require.Equal(t, int64(total), pi.AmountReceived)
	})

	t.Run("Stored5xxRefund", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := captured(t, s)
		key := unique("refund-")
		s.Fail500("POST", "/v1/refunds")
		_, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 700, Key: key, IdempotencyKey: key})
		requireTransient(t, err, "a 500")
		r, err := s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		require.Nil(t, r, "the 500 came before acting")

		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 700, Key: key, IdempotencyKey: key})
		requireTransient(t, err, "the same key replays the stored 500")
		r, err = s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		require.Nil(t, r, "a replay does not act")

		made, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 700, Key: key, IdempotencyKey: gpubroker.RetryKey(key, 1, 2)})
		require.NoError(t, err, "a new key acts")
		require.Equal(t, int64(700), made.Amount)
		r, err = s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		require.NotNil(t, r)
		require.Equal(t, made.ID, r.ID)
		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(700), pi.AmountRefunded, "refunded once")
	})

	t.Run("RefundsNeverAboveCapture", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := captured(t, s)
		refund := func(amount int64) (*gpubroker.Refund, error) {
			key := unique("refund-")
			return s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: amount, Key: key, IdempotencyKey: key})
		}
		refunded := func() int64 {
			t.Helper()
			pi, err := s.Payments.GetPaymentIntent(ctx, id)
			require.NoError(t, err)
			return pi.AmountRefunded
		}

		_, err := refund(total + 1)
		requireRefused(t, err, "a refund above the capture")
		require.Zero(t, refunded(), "a refused refund returns nothing")

		r1, err := refund(1000)
		require.NoError(t, err)
		require.Equal(t, int64(1000), r1.Amount)
		_, err = refund(total - 1000 + 1)
		requireRefused(t, err, "a refund above what remains")
		require.Equal(t, int64(1000), refunded())

		r2, err := refund(0)
		require.NoError(t, err, "no amount refunds what remains")
		require.Equal(t, int64(total-1000), r2.Amount)
		require.Equal(t, int64(total), refunded(), "refunded in full, not more")

		_, err = refund(0)
		requireState(t, err, "refunding a fully refunded payment")
		_, err = refund(1)
		requireRefused(t, err, "one cent more than the capture")
		require.Equal(t, int64(total), refunded(), "the refunds sum to the capture, never above")
	})

	t.Run("RefundBeforeCapture", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := hold(t, s, checkoutParams(unique("ord_")))
		key := unique("refund-")
		_, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Key: key, IdempotencyKey: key})
		requireState(t, err, "refunding an uncaptured hold")
		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PIRequiresCapture, pi.Status)
	})

	t.Run("CancelReleasesHold", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := hold(t, s, checkoutParams(unique("ord_")))
		key := unique("release-")
		pi, err := s.Payments.Cancel(ctx, id, "abandoned", key)
		require.NoError(t, err)
		checkPI(t, pi)
		require.Equal(t, gpubroker.PICanceled, pi.Status)
		require.Equal(t, "abandoned", pi.CancellationReason)
		require.Zero(t, pi.AmountCapturable, "nothing is held any more")
		require.Zero(t, pi.AmountReceived)

		again, err := s.Payments.Cancel(ctx, id, "abandoned", key)
		require.NoError(t, err, "the same key replays the stored answer")
		require.Equal(t, gpubroker.PICanceled, again.Status)
		cur, err := s.Payments.Cancel(ctx, id, "abandoned", unique("release-"))
		requireState(t, err, "cancelling a cancelled PaymentIntent")
		require.NotNil(t, cur)
		require.Equal(t, gpubroker.PICanceled, cur.Status)

		cur, err = s.Payments.Capture(ctx, id, unique("capture-"))
		requireState(t, err, "capturing a released hold")
		require.NotNil(t, cur, "a state error comes with the current PaymentIntent")
		require.Equal(t, gpubroker.PICanceled, cur.Status)
		require.Zero(t, cur.AmountReceived)

		id = captured(t, s)
		cur, err = s.Payments.Cancel(ctx, id, "", unique("release-"))
		requireState(t, err, "cancelling a captured PaymentIntent")
		require.NotNil(t, cur)
		require.Equal(t, gpubroker.PISucceeded, cur.Status, "cancel does not undo a capture")
	})

	t.Run("FindRefund", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := captured(t, s)
		other := captured(t, s)
		key := unique("refund-")
		r, err := s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		require.Nil(t, r, "no refund yet")

		made, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 500, Key: key, IdempotencyKey: key})
		require.NoError(t, err)
		require.Equal(t, key, made.Key)
		// Another refund of the same payment and one of another payment do not confuse it.
		k2 := unique("refund-")
		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 300, Key: k2, IdempotencyKey: k2})
		require.NoError(t, err)
		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: other, Amount: 400, Key: key, IdempotencyKey: unique("refund-other-")})
		require.NoError(t, err)

		r, err = s.Payments.FindRefund(ctx, id, key)
		require.NoError(t, err)
		require.NotNil(t, r, "FindRefund finds the refund made under our key")
		checkRefund(t, r)
		require.Equal(t, made.ID, r.ID)
		require.Equal(t, key, r.Key)
		require.Equal(t, int64(500), r.Amount)
		r, err = s.Payments.FindRefund(ctx, id, unique("refund-none-"))
		require.NoError(t, err)
		require.Nil(t, r, "no refund under another key")

		replay, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 500, Key: key, IdempotencyKey: key})
		require.NoError(t, err, "the same key replays the stored refund")
		require.Equal(t, made.ID, replay.ID)
		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(800), pi.AmountRefunded, "a replay refunds nothing more")
	})

	t.Run("KeyReusedWithOtherParameters", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		id := captured(t, s)
		key := unique("refund-")
		_, err := s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 100, Key: key, IdempotencyKey: key})
		require.NoError(t, err)
		_, err = s.Payments.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: id, Amount: 200, Key: key, IdempotencyKey: key})
		requireCode(t, gpubroker.ECONFLICT, err, "an idempotency key reused with other parameters")
		pi, err := s.Payments.GetPaymentIntent(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(100), pi.AmountRefunded)
	})

	t.Run("ExpireCheckout", func(t *testing.T) {
		t.Parallel()
		s := subject(t)
		cs, err := s.Payments.CreateCheckout(ctx, checkoutParams(unique("ord_")))
		require.NoError(t, err)
		exp, err := s.Payments.ExpireCheckout(ctx, cs.ID)
		require.NoError(t, err)
		require.Equal(t, gpubroker.SessionExpired, exp.Status)
		require.Error(t, s.Pay(ctx, cs.ID), "an expired session cannot be paid")
		again, err := s.Payments.ExpireCheckout(ctx, cs.ID)
		requireState(t, err, "expiring an expired session")
		require.NotNil(t, again)
		require.Equal(t, gpubroker.SessionExpired, again.Status)

		cs, err = s.Payments.CreateCheckout(ctx, checkoutParams(unique("ord_")))
		require.NoError(t, err)
		require.NoError(t, s.Pay(ctx, cs.ID))
		done, err := s.Payments.ExpireCheckout(ctx, cs.ID)
		requireState(t, err, "expiring a paid session")
		require.NotNil(t, done)
		require.Equal(t, gpubroker.SessionComplete, done.Status)
	})
}
