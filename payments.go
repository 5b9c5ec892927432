package gpubroker

import (
	"context"
	"errors"
	"time"
)

// PaymentIntent statuses the app acts on (Stripe's names).
const (
	PIRequiresPaymentMethod = "requires_payment_method"
	PIRequiresCapture       = "requires_capture"
	PISucceeded             = "succeeded"
	PICanceled              = "canceled"
)

// Checkout Session statuses (Stripe's names).
const (
	SessionOpen     = "open"
	SessionComplete = "complete"
	SessionExpired  = "expired"
)

// CheckoutParams describes the hosted checkout for one order. The amount is always computed
// by the API from the catalog.
type CheckoutParams struct {
	OrderID    string
	Email      string
	LineItems  []LineItem
	Currency   string
	SuccessURL string // may contain the literal {CHECKOUT_SESSION_ID}
	CancelURL  string
	ExpiresAt  time.Time
	// IdempotencyKey makes a retried create return the same session.
	IdempotencyKey string
}

// CheckoutSession is the part of a Stripe Checkout Session the app reads.
type CheckoutSession struct {
	ID                string
	URL               string
	Status            string // open, complete, expired
	PaymentStatus     string
	ClientReferenceID string
	PaymentIntentID   string // empty until the session is confirmed
	AmountTotal       int64
	Currency          string
	ExpiresAt         time.Time
}

// PaymentIntent is the part of a Stripe PaymentIntent the app reads.
type PaymentIntent struct {
	ID                 string
	Status             string
	Amount             int64
	AmountCapturable   int64
	AmountReceived     int64
	Currency           string
	CancellationReason string
}

// Refund is a created refund.
type Refund struct {
	ID     string
	Status string
	Amount int64
}

// ErrPaymentState is wrapped by Payments when Stripe refuses an operation because the
// PaymentIntent is not in the state the operation needs (for example capturing a cancelled
// hold). The returned *PaymentIntent then holds the current state.
var ErrPaymentState = errors.New("payment intent is not in the expected state")

// Payments is what GPU Broker needs from its payment processor (Stripe). Every method that
// moves money takes an idempotency key so a retried job never charges or refunds twice.
type Payments interface {
	CreateCheckout(ctx context.Context, p CheckoutParams) (*CheckoutSession, error)
	GetCheckout(ctx context.Context, sessionID string) (*CheckoutSession, error)
	ExpireCheckout(ctx context.Context, sessionID string) (*CheckoutSession, error)
	GetPaymentIntent(ctx context.Context, id string) (*PaymentIntent, error)
	// Capture captures the full authorized amount.
	Capture(ctx context.Context, paymentIntentID, idempotencyKey string) (*PaymentIntent, error)
	// Cancel releases the hold.
	Cancel(ctx context.Context, paymentIntentID, reason, idempotencyKey string) (*PaymentIntent, error)
	// Refund refunds a captured payment in full.
	Refund(ctx context.Context, paymentIntentID, idempotencyKey string) (*Refund, error)
}

// WebhookEvent is a verified Stripe event, reduced to what the app stores and routes on.
type WebhookEvent struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	// ObjectID is data.object.id: a Checkout Session id (cs_…) or PaymentIntent id (pi_…).
	ObjectID string
	// ClientReferenceID is data.object.client_reference_id for session events (our order id).
	ClientReferenceID string
	Payload           []byte
}
