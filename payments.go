package gpubroker

import (
	"context"
	"errors"
	"strconv"
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
	// AutomaticCapture takes the payment at once (an extension) instead of only authorizing
	// the card (an order, captured on Deploy: the default).
	AutomaticCapture bool
	// ExtensionID, when set, makes the session an extension's: it is the session's
	// client_reference_id (and metadata[extension_id]) instead of the order id.
	ExtensionID string
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
	// CaptureBefore is when an uncaptured card hold lapses (the latest charge's
	// payment_method_details.card.capture_before); zero when Stripe does not say.
	CaptureBefore time.Time
	// AuthorizedAt is when the card was authorized (the latest charge's created); zero when
	// there is no charge yet.
	AuthorizedAt time.Time
	// AmountRefunded is what has been refunded of the latest charge.
	AmountRefunded int64
	// ReceiptURL is Stripe's receipt page for the latest charge (kept up to date with its
	// refunds); empty when there is no charge or Stripe gives none.
	ReceiptURL string
}

// RefundParams describes one refund.
type RefundParams struct {
	PaymentIntentID string
	// Amount is how much to refund, in the payment's currency; zero refunds everything not
	// refunded yet (today every refund is in full).
	Amount int64
	// Key names this refund for good (e.g. refund-<order>): it is stored on the refund as
	// metadata[gpubroker_key], so after a lost answer FindRefund can tell whether it was made.
	Key string
	// IdempotencyKey is the key of this request. The first try uses Key itself; a retry after
	// FindRefund proved the refund missing needs a new one, because Stripe replays a stored
	// answer (a 500 too) for 24 hours.
	IdempotencyKey string
	// Reason is Stripe's refund reason (duplicate, fraudulent, requested_by_customer) or empty.
	Reason string
}

// Refund is a created refund.
type Refund struct {
	ID     string
	Status string
	Amount int64
	// Key is the refund's metadata[gpubroker_key].
	Key string
}

// RefundStatusFailed and RefundStatusCanceled are refunds that returned no money; any other
// status (pending, requires_action, succeeded) counts as made.
const (
	RefundStatusFailed   = "failed"
	RefundStatusCanceled = "canceled"
)

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
	// Refund refunds a captured payment (in full unless p.Amount is set).
	Refund(ctx context.Context, p RefundParams) (*Refund, error)
	// FindRefund returns the refund of a PaymentIntent made with RefundParams.Key key that
	// returned or is returning money, or nil when there is none.
	FindRefund(ctx context.Context, paymentIntentID, key string) (*Refund, error)
}

// Idempotency keys after a lost answer. Stripe stores the first answer under a key (a 500 too)
// and replays it for 24 hours, so a job whose call failed must not simply retry with the same
// key: it first asks Stripe for the object's state and only calls again, under RetryKey, when
// that state proves the first call did not take effect.

// RetryKey is the idempotency key of a later try of an operation whose first key is base:
// base itself for the first attempt of the first job, and base-<job>-<attempt> after that, so
// no try replays an answer stored for another.
func RetryKey(base string, jobID int64, attempt int) string {
	if attempt <= 1 {
		return base
	}
	return base + "-" + strconv.FormatInt(jobID, 10) + "-" + strconv.Itoa(attempt)
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
