package billing_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A PaymentIntent carries its latest charge's receipt_url: the dashboard's receipt link leads
// there.
func TestPaymentIntentCarriesReceiptURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	_, res := e.paidSession(t, "ord_receipt")
	pi, err := e.client.GetPaymentIntent(context.Background(), res.PaymentIntentID)
	require.NoError(t, err)
	ch := e.sim.Charge(*e.sim.PaymentIntent(res.PaymentIntentID).LatestCharge)
	require.NotNil(t, ch.ReceiptURL)
	require.Equal(t, *ch.ReceiptURL, pi.ReceiptURL)
	require.Equal(t, e.apiURL+"/dev/stripe/receipts/"+ch.ID, pi.ReceiptURL)
}
