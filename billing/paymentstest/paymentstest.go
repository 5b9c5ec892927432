// Package paymentstest is the conformance suite for gpubroker.Payments, as gpu/gputest is for
// providers: it proves that a Stripe stand-in answers as Stripe does.
//
//   - Shapes calls every method with valid arguments and checks that what our code reads comes
//     back populated and well-formed (id prefixes, amounts, currencies, statuses from Stripe's
//     documented sets), and that invalid arguments come back as the domain errors the jobs
//     expect. It runs against stripe-mock, which is stateless (it answers fixtures for any id
//     and echoes little of the request), and against the stand-in, where it also checks that the
//     answers reflect the request.
//   - Behaviour checks what the jobs rely on and stripe-mock cannot show: holds, capture,
//     stored 5xx replayed under their idempotency key, refunds never above the capture,
//     cancellation, FindRefund. It needs a server that keeps state and can be paid and faulted.
//   - Recorder and SameFields compare the raw answers of two servers field by field, so the
//     stand-in answers no field Stripe does not have, nor one of another JSON type.
package paymentstest

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
)

// Subject is one gpubroker.Payments under test and the hooks into the server behind it.
type Subject struct {
	Payments gpubroker.Payments
	// Pay completes an open Checkout Session as a customer does on the hosted page, with a
	// card that authorizes. Nil means the server is stateless (stripe-mock): it answers
	// fixtures, so Shapes calls the PaymentIntent endpoints on the id the session names (or a
	// made-up one) and checks only shapes. Behaviour needs it.
	Pay func(ctx context.Context, sessionID string) error
	// Fail500 makes the next request with this method and Stripe path (a path.Match pattern
	// such as "/v1/payment_intents/*/capture") fail with a 500 before acting, which Stripe
	// stores under the request's idempotency key and replays for it. Behaviour needs it.
	Fail500 func(method, pathPattern string)
}

// stateless reports whether the subject answers fixtures rather than keeping state.
func (s Subject) stateless() bool { return s.Pay == nil }

// Harness describes the implementation under test.
type Harness struct {
	// New returns a fresh subject for one subtest; cleanups go to t.Cleanup.
	New func(t *testing.T) Subject
}

// Documented value sets (Stripe API reference, 2023-10-16 and later).
var (
	sessionStatuses        = []string{gpubroker.SessionOpen, gpubroker.SessionComplete, gpubroker.SessionExpired}
	sessionPaymentStatuses = []string{"paid", "unpaid", "no_payment_required"}
	piStatuses             = []string{gpubroker.PIRequiresPaymentMethod, "requires_confirmation", "requires_action",
		"processing", gpubroker.PIRequiresCapture, gpubroker.PICanceled, gpubroker.PISucceeded}
	cancellationReasons = []string{"", "abandoned", "automatic", "duplicate", "expired", "failed_invoice",
		"fraudulent", "requested_by_customer", "void_invoice"}
	refundStatuses = []string{"pending", "requires_action", "succeeded", gpubroker.RefundStatusFailed, gpubroker.RefundStatusCanceled}
)

var (
	currencyRE = regexp.MustCompile(`^[a-z]{3}$`)
	idTailRE   = regexp.MustCompile(`^[A-Za-z0-9_]{8,}$`)
)

// Line items of every checkout the suite creates, and their total.
var lineItems = []gpubroker.LineItem{
	{Name: "Pro plan", UnitAmountCent: 4900, Quantity: 1},
	{Name: "NVIDIA A100 80GB in us-east (per hour)", UnitAmountCent: 150, Quantity: 3},
}

const total = 4900 + 3*150

// unique returns prefix plus a random suffix, so keys and order ids never meet across runs of
// a shared server.
func unique(prefix string) string { return prefix + strings.ToLower(rand.Text()[:12]) }

func checkoutParams(orderID string) gpubroker.CheckoutParams {
	return gpubroker.CheckoutParams{
		OrderID:        orderID,
		Email:          "ada@example.com",
		LineItems:      slices.Clone(lineItems),
		Currency:       gpubroker.Currency,
		SuccessURL:     "http://localhost:8080/payment/success/?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:      "http://localhost:8080/get-started/",
		ExpiresAt:      time.Now().Add(gpubroker.CheckoutLifetime),
		IdempotencyKey: "checkout-" + orderID,
	}
}

func requireID(t *testing.T, prefix, id, what string) {
	t.Helper()
	tail, ok := strings.CutPrefix(id, prefix)
	require.True(t, ok, "%s id %q must start with %q", what, id, prefix)
	require.Regexp(t, idTailRE, tail, "%s id %q", what, id)
}

func requireURL(t *testing.T, s, what string) {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err, "%s %q", what, s)
	require.Contains(t, []string{"http", "https"}, u.Scheme, "%s %q", what, s)
	require.NotEmpty(t, u.Host, "%s %q", what, s)
}

func requireCurrency(t *testing.T, c, what string) {
	t.Helper()
	require.Regexp(t, currencyRE, c, "%s currency must be a lowercase ISO code", what)
}

// checkSession checks what the app reads of any Checkout Session.
func checkSession(t *testing.T, cs *gpubroker.CheckoutSession) {
	t.Helper()
	require.NotNil(t, cs)
	requireID(t, "cs_", cs.ID, "checkout session")
	require.Contains(t, sessionStatuses, cs.Status, "session %s status", cs.ID)
	require.Contains(t, sessionPaymentStatuses, cs.PaymentStatus, "session %s payment_status", cs.ID)
	if cs.Status == gpubroker.SessionOpen {
		requireURL(t, cs.URL, "an open session's url")
	}
	if cs.PaymentIntentID != "" {
		requireID(t, "pi_", cs.PaymentIntentID, "session payment_intent")
	}
	require.GreaterOrEqual(t, cs.AmountTotal, int64(0), "session amount_total")
	if cs.Currency != "" {
		requireCurrency(t, cs.Currency, "session")
	}
	require.False(t, cs.ExpiresAt.IsZero(), "session %s expires_at", cs.ID)
}

// checkOurSession checks that a session reflects what checkoutParams asked for (stateful
// servers only).
func checkOurSession(t *testing.T, cs *gpubroker.CheckoutSession, ref string, created time.Time) {
	t.Helper()
	require.Equal(t, ref, cs.ClientReferenceID, "client_reference_id")
	require.Equal(t, int64(total), cs.AmountTotal, "amount_total is the sum of the line items")
	require.Equal(t, gpubroker.Currency, cs.Currency)
	// Stripe's window: 30 minutes to 24 hours after creation.
	require.WithinRange(t, cs.ExpiresAt, created.Add(30*time.Minute-time.Second), created.Add(24*time.Hour+time.Minute), "expires_at")
}

// checkPI checks what the app reads of any PaymentIntent.
func checkPI(t *testing.T, pi *gpubroker.PaymentIntent) {
	t.Helper()
	require.NotNil(t, pi)
	requireID(t, "pi_", pi.ID, "payment intent")
	require.Contains(t, piStatuses, pi.Status, "payment intent %s status", pi.ID)
	require.Positive(t, pi.Amount, "payment intent %s amount", pi.ID)
	require.GreaterOrEqual(t, pi.AmountCapturable, int64(0))
	require.LessOrEqual(t, pi.AmountCapturable, pi.Amount, "amount_capturable")
	require.GreaterOrEqual(t, pi.AmountReceived, int64(0))
	require.LessOrEqual(t, pi.AmountReceived, pi.Amount, "amount_received")
	require.GreaterOrEqual(t, pi.AmountRefunded, int64(0))
	requireCurrency(t, pi.Currency, "payment intent")
	require.Contains(t, cancellationReasons, pi.CancellationReason, "payment intent %s cancellation_reason", pi.ID)
	if pi.ReceiptURL != "" {
		requireURL(t, pi.ReceiptURL, "receipt_url")
	}
	if !pi.CaptureBefore.IsZero() && !pi.AuthorizedAt.IsZero() {
		require.True(t, pi.CaptureBefore.After(pi.AuthorizedAt), "capture_before %v after the authorization %v", pi.CaptureBefore, pi.AuthorizedAt)
	}
}

// checkRefund checks what the app reads of any refund.
func checkRefund(t *testing.T, r *gpubroker.Refund) {
	t.Helper()
	require.NotNil(t, r)
	requireID(t, "re_", r.ID, "refund")
	require.Contains(t, refundStatuses, r.Status, "refund %s status", r.ID)
	require.Positive(t, r.Amount, "refund %s amount", r.ID)
}

// requireCode checks that err is the domain error code (and not a state error).
func requireCode(t *testing.T, code string, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.Equal(t, code, gpubroker.ErrorCode(err), "%s: %v", what, err)
	require.NotErrorIs(t, err, gpubroker.ErrPaymentState, what)
}

// requireState checks that err is a state error.
func requireState(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.ErrorIs(t, err, gpubroker.ErrPaymentState, "%s: %v", what, err)
}

// requireTransient checks that err is one a job retries: neither a domain error nor a state
// error.
func requireTransient(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.Equal(t, gpubroker.EINTERNAL, gpubroker.ErrorCode(err), "%s must stay retryable: %v", what, err)
	require.NotErrorIs(t, err, gpubroker.ErrPaymentState, what)
}

// requireRefused checks that a refund was refused for good: a state error or an invalid
// request, never a transient error a job would retry into the same refusal forever unseen.
func requireRefused(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	if errors.Is(err, gpubroker.ErrPaymentState) {
		return
	}
	require.Equal(t, gpubroker.EINVALID, gpubroker.ErrorCode(err), "%s must be refused for good: %v", what, err)
}
