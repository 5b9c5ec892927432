package stripesim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// A charge carries receipt_url, as Stripe's do: a page kept up to date with the charge,
// refunds included. The stand-in serves it under its prefix.
func TestChargeReceipt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	pi := h.paidIntent(t)

	charge := func() map[string]any {
		t.Helper()
		st, _, raw := h.do(t, "GET", "/v1/payment_intents/"+pi+"?expand[]=latest_charge", nil, nil)
		require.Equal(t, http.StatusOK, st, string(raw))
		var got struct {
			LatestCharge map[string]any `json:"latest_charge"`
		}
		require.NoError(t, json.Unmarshal(raw, &got))
		return got.LatestCharge
	}
	ch := charge()
	receiptURL, _ := ch["receipt_url"].(string)
	require.Equal(t, h.base+"/dev/stripe/receipts/"+ch["id"].(string), receiptURL)
	require.Equal(t, receiptURL, *h.sim.Charge(ch["id"].(string)).ReceiptURL)

	page := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := page(receiptURL)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "$53.50")
	require.Contains(t, body, "Authorized, not charged")
	require.Contains(t, body, "A100 &lt;80GB&gt; (per hour)", "the session's line items, escaped")
	require.Contains(t, body, "4242")

	st, _, raw := h.do(t, "POST", "/v1/payment_intents/"+pi+"/capture", url.Values{}, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	st, _, raw = h.do(t, "POST", "/v1/refunds", url.Values{"payment_intent": {pi}, "amount": {"300"}}, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	status, body = page(receiptURL)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "$53.50")
	require.Contains(t, body, "Refunded")
	require.Contains(t, body, "$3.00")
	require.NotContains(t, body, "Authorized, not charged")
	require.Equal(t, receiptURL, charge()["receipt_url"], "the same page, kept up to date")

	status, _ = page(h.base + "/dev/stripe/receipts/ch_nope")
	require.Equal(t, http.StatusNotFound, status)
}
