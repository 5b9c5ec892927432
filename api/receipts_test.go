package api

import (
	"gpubroker"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/postgres"
	"gpubroker/site"
)

// A receipt says what its payment bought in the site's words, and when an extension's payment
// bought nothing, why.
func TestReceiptDescription(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	s := &Server{Catalog: cat}
	order := postgres.Receipt{Kind: gpubroker.PaymentOrder, Plan: "pro", GPU: "h100", Region: "eu-central", Hours: 2, HourlyCents: 319, AmountCents: 4900 + 2*319}
	require.Equal(t, "Pro plan (30 days) + 2 hours of NVIDIA H100 80GB in EU Central", s.receiptDescription(order))
	order.AmountCents = 2 * 319 // priced while Pro was active: no fee
	require.Equal(t, "2 hours of NVIDIA H100 80GB in EU Central", s.receiptDescription(order))
	ext := postgres.Receipt{Kind: gpubroker.PaymentExtension, Plan: "pro", GPU: "h100", Region: "eu-central", Hours: 1, HourlyCents: 319, AmountCents: 319}
	require.Equal(t, "1 more hour of NVIDIA H100 80GB in EU Central", s.receiptDescription(ext))
	ext.Refused = gpubroker.RefundLateExtension
	require.Equal(t, "1 more hour of NVIDIA H100 80GB in EU Central: not added, the pod had already stopped (refunded in full)", s.receiptDescription(ext))
	ext.Refused = gpubroker.RefundOverLimit
	require.Equal(t, "1 more hour of NVIDIA H100 80GB in EU Central: not added, past the Pro plan's 168 hours (refunded in full)", s.receiptDescription(ext))
}
