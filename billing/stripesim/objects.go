package stripesim

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"slices"
)

// APIVersion is the Stripe API version the stand-in's objects and events follow: the one
// stripe-go v76 pins.
const APIVersion = "2023-10-16"

// Stripe's object names.
const (
	objectSession       = "checkout.session"
	objectPaymentIntent = "payment_intent"
	objectCharge        = "charge"
	objectRefund        = "refund"
	objectEvent         = "event"
)

// CheckoutSession is a Checkout Session, serialized like Stripe's (API 2023-10-16, the fields
// a payment-mode hosted session has that anyone is likely to read).
type CheckoutSession struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	AmountSubtotal     int64             `json:"amount_subtotal"`
	AmountTotal        int64             `json:"amount_total"`
	CancelURL          *string           `json:"cancel_url"`
	ClientReferenceID  *string           `json:"client_reference_id"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Customer           *string           `json:"customer"`
	CustomerCreation   string            `json:"customer_creation"`
	CustomerDetails    *CustomerDetails  `json:"customer_details"`
	CustomerEmail      *string           `json:"customer_email"`
	ExpiresAt          int64             `json:"expires_at"`
	Livemode           bool              `json:"livemode"`
	Locale             *string           `json:"locale"`
	Metadata           map[string]string `json:"metadata"`
	Mode               string            `json:"mode"`
	PaymentIntent      *string           `json:"payment_intent"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	PaymentStatus      string            `json:"payment_status"`
	Status             string            `json:"status"`
	SubmitType         *string           `json:"submit_type"`
	SuccessURL         string            `json:"success_url"`
	UIMode             string            `json:"ui_mode"`
	// URL is the hosted page; Stripe sets it to null once the session is no longer open.
	URL *string `json:"url"`

	// LineItems are kept for the hosted page; Stripe returns them only from a separate
	// endpoint or when expanded.
	LineItems []LineItem `json:"-"`
	// What payment_intent_data asked for, applied when the PaymentIntent is created at payment.
	CaptureMethod string            `json:"-"`
	piMetadata    map[string]string // payment_intent_data[metadata]
	piDescription *string
	baseURL       string // origin + prefix the session was created under: its charge's receipt_url
}

// CustomerDetails is the customer a completed session collected.
type CustomerDetails struct {
	Address   *struct{} `json:"address"`
	Email     *string   `json:"email"`
	Name      *string   `json:"name"`
	Phone     *string   `json:"phone"`
	TaxExempt string    `json:"tax_exempt"`
	TaxIDs    []string  `json:"tax_ids"`
}

// LineItem is one line of a session, from line_items[i][price_data].
type LineItem struct {
	Name       string
	UnitAmount int64
	Quantity   int64
	Currency   string
}

// PaymentIntent is a PaymentIntent, serialized like Stripe's.
type PaymentIntent struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Amount             int64             `json:"amount"`
	AmountCapturable   int64             `json:"amount_capturable"`
	AmountReceived     int64             `json:"amount_received"`
	CanceledAt         *int64            `json:"canceled_at"`
	CancellationReason *string           `json:"cancellation_reason"`
	CaptureMethod      string            `json:"capture_method"`
	ClientSecret       string            `json:"client_secret"`
	ConfirmationMethod string            `json:"confirmation_method"`
	Created            int64             `json:"created"`
	Currency           string            `json:"currency"`
	Customer           *string           `json:"customer"`
	Description        *string           `json:"description"`
	LastPaymentError   *struct{}         `json:"last_payment_error"`
	LatestCharge       *string           `json:"latest_charge"`
	Livemode           bool              `json:"livemode"`
	Metadata           map[string]string `json:"metadata"`
	PaymentMethod      *string           `json:"payment_method"`
	PaymentMethodTypes []string          `json:"payment_method_types"`
	ReceiptEmail       *string           `json:"receipt_email"`
	Status             string            `json:"status"`
}

// Charge is the card charge behind a PaymentIntent; it appears in charge.* events.
type Charge struct {
	ID                   string               `json:"id"`
	Object               string               `json:"object"`
	Amount               int64                `json:"amount"`
	AmountCaptured       int64                `json:"amount_captured"`
	AmountRefunded       int64                `json:"amount_refunded"`
	Captured             bool                 `json:"captured"`
	Created              int64                `json:"created"`
	Currency             string               `json:"currency"`
	Description          *string              `json:"description"`
	Livemode             bool                 `json:"livemode"`
	Metadata             map[string]string    `json:"metadata"`
	Paid                 bool                 `json:"paid"`
	PaymentIntent        string               `json:"payment_intent"`
	PaymentMethod        string               `json:"payment_method"`
	PaymentMethodDetails PaymentMethodDetails `json:"payment_method_details"`
	// ReceiptURL is the charge's receipt page, kept up to date with the charge (refunds
	// included); the stand-in serves it at {prefix}/receipts/{charge id}.
	ReceiptURL *string `json:"receipt_url"`
	Refunded   bool    `json:"refunded"`
	Status     string  `json:"status"`

	items []LineItem // the session's line items, shown on the receipt
}

// PaymentMethodDetails is the card part of a charge.
type PaymentMethodDetails struct {
	Type string      `json:"type"`
	Card CardDetails `json:"card"`
}

// CardDetails describes the test card; CaptureBefore is when an uncaptured hold lapses.
type CardDetails struct {
	Brand         string `json:"brand"`
	Last4         string `json:"last4"`
	ExpMonth      int    `json:"exp_month"`
	ExpYear       int    `json:"exp_year"`
	Funding       string `json:"funding"`
	CaptureBefore int64  `json:"capture_before,omitempty"`
}

// Refund is a refund, serialized like Stripe's.
type Refund struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Amount        int64             `json:"amount"`
	Charge        string            `json:"charge"`
	Created       int64             `json:"created"`
	Currency      string            `json:"currency"`
	Metadata      map[string]string `json:"metadata"`
	PaymentIntent string            `json:"payment_intent"`
	Reason        *string           `json:"reason"`
	Status        string            `json:"status"`

	seq int // creation order, for lists within one second
}

// eventJSON is a Stripe event as delivered to webhooks.
type eventJSON struct {
	ID              string       `json:"id"`
	Object          string       `json:"object"`
	APIVersion      string       `json:"api_version"`
	Created         int64        `json:"created"`
	Data            eventData    `json:"data"`
	Livemode        bool         `json:"livemode"`
	PendingWebhooks int          `json:"pending_webhooks"`
	Request         eventRequest `json:"request"`
	Type            string       `json:"type"`
}

type eventData struct {
	Object json.RawMessage `json:"object"`
}

type eventRequest struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

// Stripe error types used by the stand-in.
const (
	typeInvalidRequest = "invalid_request_error"
	typeIdempotency    = "idempotency_error"
	typeAPI            = "api_error"
)

// apiError is a Stripe error answer: {"error": {...}} with an HTTP status.
type apiError struct {
	status        int
	Code          string         `json:"code,omitempty"`
	DocURL        string         `json:"doc_url,omitempty"`
	Message       string         `json:"message"`
	Param         string         `json:"param,omitempty"`
	PaymentIntent *PaymentIntent `json:"payment_intent,omitempty"`
	Type          string         `json:"type"`
}

func invalidParam(param, msg string) *apiError {
	return &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_invalid", Param: param, Message: msg}
}

func missingParam(param string) *apiError {
	return &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_missing", Param: param,
		Message: "Missing required param: " + param + "."}
}

func noSuch(object, id string) *apiError {
	return &apiError{status: 404, Type: typeInvalidRequest, Code: "resource_missing", Param: "id",
		DocURL:  "https://stripe.com/docs/error-codes/resource-missing",
		Message: "No such " + object + ": '" + id + "'"}
}

func ptr[T any](v T) *T { return &v }

// newID returns prefix + n random base62 characters, the shape of Stripe's ids.
func newID(prefix string, n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// Copies handed out by the exported accessors, so callers cannot race with the server.

func (s *CheckoutSession) clone() *CheckoutSession {
	c := *s
	c.Metadata = maps.Clone(s.Metadata)
	c.piMetadata = maps.Clone(s.piMetadata)
	c.LineItems = slices.Clone(s.LineItems)
	c.PaymentMethodTypes = slices.Clone(s.PaymentMethodTypes)
	if s.CustomerDetails != nil {
		cd := *s.CustomerDetails
		c.CustomerDetails = &cd
	}
	return &c
}

func (p *PaymentIntent) clone() *PaymentIntent {
	c := *p
	c.Metadata = maps.Clone(p.Metadata)
	c.PaymentMethodTypes = slices.Clone(p.PaymentMethodTypes)
	return &c
}
