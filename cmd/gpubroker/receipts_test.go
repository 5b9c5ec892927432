package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// receiptView is one of GET /api/me's receipts.
type receiptView struct {
	ID            string    `json:"id"`
	PodID         string    `json:"pod_id"`
	Kind          string    `json:"kind"`
	Description   string    `json:"description"`
	AmountCents   int64     `json:"amount_cents"`
	RefundedCents int64     `json:"refunded_cents"`
	Currency      string    `json:"currency"`
	PaidAt        time.Time `json:"paid_at"`
	ReceiptURL    string    `json:"receipt_url"`
}

// meView is the part of GET /api/me the receipt tests read.
type meView struct {
	Receipts []receiptView `json:"receipts"`
	Pods     []struct {
		ID         string `json:"id"`
		Hours      int    `json:"hours"`
		HoursTotal int    `json:"hours_total"`
		PaidCents  int64  `json:"paid_cents"`
	} `json:"pods"`
}

func (e *env) me(c *http.Client) meView {
	e.t.Helper()
	resp, err := c.Get(e.url + "/api/me")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var v meView
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&v))
	require.NotNil(e.t, v.Receipts, "receipts is a list, never null")
	return v
}

// receiptOf returns the receipt of a kind.
func receiptOf(t *testing.T, v meView, kind string) receiptView {
	t.Helper()
	for _, r := range v.Receipts {
		if r.Kind == kind {
			return r
		}
	}
	t.Fatalf("no %s receipt in %+v", kind, v.Receipts)
	return receiptView{}
}

// Issue 15.6: a receipt per payment on the dashboard. A Pro order of 3 hours of an A100 in
// us-east ($49 + 3 × $1.79), extended by 1 hour ($1.79) and stopped 10 minutes in: the order's
// receipt and the extension's, each with what it paid for and what was refunded of it (the
// extension first, all of it, then 2 hours of the order); the pod says 4 hours and $56.16 paid. Each
// receipt's link answers 303 to Stripe's receipt for its charge, for its owner only.
func TestReceiptsPerPayment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("receipts@example.com", 3)

	me := e.me(c)
	require.Len(t, me.Receipts, 1)
	order := me.Receipts[0]
	require.Equal(t, "order", order.Kind)
	require.Equal(t, podID, order.PodID)
	require.EqualValues(t, 4900+3*179, order.AmountCents)
	require.Zero(t, order.RefundedCents)
	require.Equal(t, "usd", order.Currency)
	require.WithinDuration(t, time.Now(), order.PaidAt, time.Minute)
	require.Equal(t, "/api/me/receipts/"+order.ID, order.ReceiptURL)
	require.Equal(t, "Pro plan (30 days) + 3 hours of NVIDIA A100 80GB in US East", order.Description)
	require.Len(t, me.Pods, 1)
	require.Equal(t, 3, me.Pods[0].HoursTotal)
	require.EqualValues(t, 5437, me.Pods[0].PaidCents)

	oldEnd := *e.rentalPod(c, podID).EndsAt
	e.extend(c, podID, 1, 179)
	e.eventually("extended", func() bool { return e.rentalPod(c, podID).EndsAt.After(oldEnd) })
	me = e.me(c)
	require.Len(t, me.Receipts, 2)
	require.Equal(t, "extension", me.Receipts[0].Kind, "newest first")
	ext := me.Receipts[0]
	require.EqualValues(t, 179, ext.AmountCents)
	require.Equal(t, "1 more hour of NVIDIA A100 80GB in US East", ext.Description)
	require.Equal(t, podID, ext.PodID)
	require.Equal(t, 3, me.Pods[0].Hours, "the order's hours")
	require.Equal(t, 4, me.Pods[0].HoursTotal, "with the paid extension")
	require.EqualValues(t, 5437+179, me.Pods[0].PaidCents)

	// Stopped 10 minutes in: 10 of 240 minutes used, 230 unused: 230 × 179 / 60 → $6.86, the
	// extension's $1.79 first and $5.07 of the order's.
	e.ranFor(podID, tenMinutesIn)
	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.eventually("refunded", func() bool { return *e.rentalPod(c, podID).RefundedCents == 686 })
	e.idle()
	me = e.me(c)
	require.EqualValues(t, 179, receiptOf(t, me, "extension").RefundedCents, "the extension is refunded first, all of it")
	require.EqualValues(t, 686-179, receiptOf(t, me, "order").RefundedCents, "then the rest of the 230 unused minutes from the order")

	// The link: 303 to the receipt Stripe keeps for the payment's charge, which shows the amount
	// and the refund.
	for _, r := range me.Receipts {
		resp, err := c.Get(e.url + r.ReceiptURL)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, r.Kind)
		pi := e.m.StripeSim.PaymentIntent(e.paymentIntentOfPayment(r.ID))
		require.NotNil(t, pi.LatestCharge)
		ch := e.m.StripeSim.Charge(*pi.LatestCharge)
		require.NotNil(t, ch.ReceiptURL)
		require.Equal(t, *ch.ReceiptURL, resp.Header.Get("Location"), r.Kind)
	}
	resp, err := http.Get(e.url + "/api/me/receipts/" + receiptOf(t, me, "order").ID)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "signed out")
	page := e.followReceipt(c, receiptOf(t, me, "order").ReceiptURL)
	require.Contains(t, page, "$54.37")
	require.Contains(t, page, "$5.07", "the refunded amount")

	// Another account never gets this account's receipts, nor learns they exist.
	other, _ := e.signUp("someone-else@example.com")
	for _, r := range me.Receipts {
		res := e.api(other).Receipt(r.ReceiptURL)
		require.Equal(t, http.StatusNotFound, res.Code, res)
	}
	for _, junk := range []string{"not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		res := e.api(c).Receipt("/api/me/receipts/" + junk)
		require.Equal(t, http.StatusNotFound, res.Code, res)
	}
	require.Len(t, e.me(other).Receipts, 0, "an authorized order not deployed yet has paid nothing")
}

func (e *env) paymentIntentOfPayment(paymentID string) string {
	e.t.Helper()
	var pi string
	require.NoError(e.t, e.m.Pool.QueryRow(context.Background(), `SELECT payment_intent_id FROM payments WHERE id = $1`, paymentID).Scan(&pi))
	return pi
}

// followReceipt opens a receipt link as a browser does (following the redirect) and returns the
// page.
func (e *env) followReceipt(c *http.Client, path string) string {
	e.t.Helper()
	follow := &http.Client{Jar: c.Jar, Timeout: 10 * time.Second}
	resp, err := follow.Get(e.url + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.True(e.t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return string(b)
}
