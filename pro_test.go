package gpubroker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/site"
)

// Issue 11.5: while the Pro fee is paid, a quote leaves it out; the line items still add up.
func TestQuoteForPaidFee(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	r := gpubroker.OrderRequest{Email: "ada@example.com", Name: "Ada", Plan: "pro", Template: "developer", GPU: "h100", Region: "us-west", Hours: 10}
	now := time.Now()
	q, err := cat.QuoteFor(r, now.Add(time.Hour), now)
	require.NoError(t, err)
	require.Equal(t, int64(10*289), q.AmountCents)
	require.Len(t, q.LineItems, 1)
	q, err = cat.QuoteFor(r, now.Add(-time.Hour), now)
	require.NoError(t, err)
	require.Equal(t, int64(4900+10*289), q.AmountCents, "lapsed: the fee again")
}
