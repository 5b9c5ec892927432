package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
)

// Checkout offers cards only: capture_method=manual would otherwise hold Klarna, Link … with
// other hold windows.
func TestCheckoutIsCardOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	cs, err := e.client.CreateCheckout(context.Background(), checkoutParams("ord_card"))
	require.NoError(t, err)
	require.Equal(t, []string{"card"}, e.sim.Session(cs.ID).PaymentMethodTypes)
}

// The hold's deadline comes from the charge (capture_before), not from our clock.
func TestPaymentIntentCarriesCaptureBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	e.sim.SetHoldLifetime(4*24*time.Hour + 18*time.Hour)
	before := time.Now().Truncate(time.Second)
	_, res := e.paidSession(t, "ord_deadline")
	pi, err := e.client.GetPaymentIntent(ctx, res.PaymentIntentID)
	require.NoError(t, err)
	require.WithinRange(t, pi.CaptureBefore, before.Add(4*24*time.Hour+18*time.Hour), time.Now().Add(4*24*time.Hour+18*time.Hour))
	require.WithinRange(t, pi.AuthorizedAt, before, time.Now(), "the charge's creation is the authorization")

	// What was refunded of the charge, as the reconciler compares it with our ledger.
	_, err = e.client.Capture(ctx, res.PaymentIntentID, "capture-ord_deadline")
	require.NoError(t, err)
	_, err = e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: res.PaymentIntentID, Amount: 100, Key: "refund-x", IdempotencyKey: "refund-x"})
	require.NoError(t, err)
	pi, err = e.client.GetPaymentIntent(ctx, res.PaymentIntentID)
	require.NoError(t, err)
	require.Equal(t, int64(100), pi.AmountRefunded)
}

// A refund is marked with its logical key, so after a lost answer the caller can find it
// instead of refunding again under a new idempotency key.
func TestFindRefundByKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	_, res := e.paidSession(t, "ord_find")
	_, err := e.client.Capture(ctx, res.PaymentIntentID, "capture-ord_find")
	require.NoError(t, err)

	r, err := e.client.FindRefund(ctx, res.PaymentIntentID, "refund-ord_find")
	require.NoError(t, err)
	require.Nil(t, r, "no refund yet")

	e.sim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/refunds", Mode: stripesim.LoseAnswer, Times: 1})
	_, err = e.client.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: res.PaymentIntentID, Key: "refund-ord_find", IdempotencyKey: "refund-ord_find"})
	require.Error(t, err, "the answer was lost")
	require.NotErrorIs(t, err, gpubroker.ErrPaymentState)

	r, err = e.client.FindRefund(ctx, res.PaymentIntentID, "refund-ord_find")
	require.NoError(t, err)
	require.NotNil(t, r)
	require.Equal(t, int64(checkoutTotal), r.Amount)
	require.Equal(t, "succeeded", r.Status)
	other, err := e.client.FindRefund(ctx, res.PaymentIntentID, "refund-ord_other")
	require.NoError(t, err)
	require.Nil(t, other)
	require.Equal(t, 1, e.sim.RefundCount(res.PaymentIntentID))
}
