// Package billing implements gpubroker.Payments on Stripe with stripe-go v76, and verifies
// Stripe webhooks.
//
// Errors returned by Client follow one rule so that jobs can decide whether to retry:
//   - an error wrapping gpubroker.ErrPaymentState (a *StateError) means Stripe refused the
//     operation because of the object's state; the current state is returned with it;
//   - a *gpubroker.Error (ENOTFOUND, EINVALID, ECONFLICT) is permanent: retrying the same
//     request cannot succeed;
//   - anything else (network errors, 429, 5xx, 409 lock or key-in-use conflicts, bad API key)
//     is transient and the job should retry it with the same idempotency key.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"gpubroker"
)

// Config configures a Client.
type Config struct {
	// SecretKey is the Stripe secret key (sk_live_…, sk_test_…).
	SecretKey string
	// APIBase overrides Stripe's API origin, e.g. "http://localhost:8080/dev/stripe" for the
	// stand-in or "http://localhost:12111" for stripe-mock. Empty means the real Stripe API.
	APIBase string
	// HTTPClient is used for every request; nil means stripe-go's default (80 s timeout).
	HTTPClient *http.Client
	// MaxNetworkRetries is how often stripe-go itself retries a failed request (it retries
	// only what is safe: network errors, 409, 503 and 5xx on GET). Zero disables them: the
	// jobs calling us already retry with backoff, and stacking two retry loops only
	// multiplies the delay before a job records the failure.
	MaxNetworkRetries int64
	// Logger receives stripe-go's own log lines. Nil silences them: stripe-go logs every 4xx as
	// an error, including the state errors this package handles and returns.
	Logger *slog.Logger
}

// Client is gpubroker.Payments on Stripe.
type Client struct {
	api *client.API
	now func() time.Time
}

var _ gpubroker.Payments = (*Client)(nil)

// New returns a Client for cfg. It does not contact Stripe.
func New(cfg Config) *Client {
	bc := &stripe.BackendConfig{
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: stripe.Int64(max(cfg.MaxNetworkRetries, 0)),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.Logger != nil {
		bc.LeveledLogger = slogLeveled{cfg.Logger}
	}
	if cfg.APIBase != "" {
		bc.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	b := stripe.GetBackendWithConfig(stripe.APIBackend, bc)
	api := &client.API{}
	// Only the API backend is used; passing it for all three keeps Init from building default
	// backends that would point at the real Stripe.
	api.Init(cfg.SecretKey, &stripe.Backends{API: b, Connect: b, Uploads: b})
	return &Client{api: api, now: time.Now}
}

// Stripe accepts expires_at only between 30 minutes and 24 hours after it creates the session,
// measured on its own clock. A requested expiry inside the window with a margin for latency and
// clock skew is sent as it is; one outside is moved into it rather than failing the checkout.
//
// The expiry is part of the request body Stripe compares under an idempotency key, so it must
// not move between a call and its retry. A valid expiry never does; a moved one is rounded to
// the minute, so a retry within the same minute sends the same body.
const (
	minSessionLifetime = 30*time.Minute + 30*time.Second // sent as is from here …
	maxSessionLifetime = 23*time.Hour + 59*time.Minute   // … to here
	raisedLifetime     = 31 * time.Minute                // too early: at least this (rounded up)
	loweredLifetime    = 23*time.Hour + 55*time.Minute   // too late: at most this (rounded down)
)

// sessionExpiry is the expires_at sent for a requested expiry at now.
func sessionExpiry(requested, now time.Time) time.Time {
	switch {
	case requested.Before(now.Add(minSessionLifetime)):
		exp := now.Add(raisedLifetime)
		if t := exp.Truncate(time.Minute); t.Before(exp) {
			exp = t.Add(time.Minute)
		}
		return exp
	case requested.After(now.Add(maxSessionLifetime)):
		return now.Add(loweredLifetime).Truncate(time.Minute)
	}
	return requested
}

// CreateCheckout creates a hosted Checkout Session in payment mode whose PaymentIntent only
// authorizes the card (capture_method=manual), or is captured at once with p.AutomaticCapture. p.IdempotencyKey makes a retried create return
// the same session. ExpiresAt is moved into Stripe's window if it is outside (see sessionExpiry).
func (c *Client) CreateCheckout(ctx context.Context, p gpubroker.CheckoutParams) (*gpubroker.CheckoutSession, error) {
	if len(p.LineItems) == 0 {
		return nil, gpubroker.Errorf(gpubroker.EINVALID, "no_line_items", "a checkout needs at least one line item")
	}
	currency := strings.ToLower(p.Currency)
	if currency == "" {
		currency = gpubroker.Currency
	}
	params := &stripe.CheckoutSessionParams{
		Mode: stripe.String(string(stripe.CheckoutSessionModePayment)),
		// Cards only: capture_method=manual applies to every method that supports it
		// (Klarna, Affirm, Link …), each with its own hold window; ours are card holds.
		PaymentMethodTypes: []*string{stripe.String("card")},
		ClientReferenceID:  stripe.String(p.OrderID),
		SuccessURL:         stripe.String(p.SuccessURL),
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			CaptureMethod: stripe.String(string(stripe.PaymentIntentCaptureMethodManual)),
			// On the PaymentIntent too, so the order is findable from a payment_intent.* event
			// or the dashboard's payment view without going through the session.
			Metadata: map[string]string{"order_id": p.OrderID},
		},
		Metadata: map[string]string{"order_id": p.OrderID},
		// UIMode is deliberately left unset: hosted is the default, and stripe-mock's newer
		// OpenAPI spec no longer accepts ui_mode=hosted.
	}
	if p.AutomaticCapture {
		params.PaymentIntentData.CaptureMethod = stripe.String(string(stripe.PaymentIntentCaptureMethodAutomatic))
	}
	if p.ExtensionID != "" {
		params.ClientReferenceID = stripe.String(p.ExtensionID)
		params.PaymentIntentData.Metadata["extension_id"] = p.ExtensionID
		params.Metadata["extension_id"] = p.ExtensionID
	}
	if p.CancelURL != "" {
		params.CancelURL = stripe.String(p.CancelURL)
	}
	if p.Email != "" {
		params.CustomerEmail = stripe.String(p.Email)
	}
	if !p.ExpiresAt.IsZero() {
		params.ExpiresAt = stripe.Int64(sessionExpiry(p.ExpiresAt, c.now()).Unix())
	}
	for _, li := range p.LineItems {
		params.LineItems = append(params.LineItems, &stripe.CheckoutSessionLineItemParams{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(currency),
				UnitAmount: stripe.Int64(li.UnitAmountCent),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name: stripe.String(li.Name),
				},
			},
			Quantity: stripe.Int64(li.Quantity),
		})
	}
	params.Context = ctx
	if p.IdempotencyKey != "" {
		params.SetIdempotencyKey(p.IdempotencyKey)
	}
	s, err := c.api.CheckoutSessions.New(params)
	if err != nil {
		return nil, mapError("create checkout session", err)
	}
	return toSession(s), nil
}

// GetCheckout fetches a Checkout Session.
func (c *Client) GetCheckout(ctx context.Context, sessionID string) (*gpubroker.CheckoutSession, error) {
	params := &stripe.CheckoutSessionParams{}
	params.Context = ctx
	s, err := c.api.CheckoutSessions.Get(sessionID, params)
	if err != nil {
		return nil, mapError("get checkout session "+sessionID, err)
	}
	return toSession(s), nil
}

// ExpireCheckout ends an open Checkout Session so it can no longer be paid. When the session
// is no longer open (completed or already expired), the current session is returned with a
// *StateError.
func (c *Client) ExpireCheckout(ctx context.Context, sessionID string) (*gpubroker.CheckoutSession, error) {
	params := &stripe.CheckoutSessionExpireParams{}
	params.Context = ctx
	s, err := c.api.CheckoutSessions.Expire(sessionID, params)
	if err == nil {
		return toSession(s), nil
	}
	op := "expire checkout session " + sessionID
	// Stripe documents no error code for "session not open", so any invalid request other
	// than a missing session is checked against the session's current status.
	var se *stripe.Error
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeInvalidRequest && se.HTTPStatusCode == http.StatusBadRequest {
		cur, gerr := c.GetCheckout(ctx, sessionID)
		if gerr != nil {
			return nil, fmt.Errorf("billing: %s: %v; fetching the session failed: %w", op, err, gerr)
		}
		if cur.Status != gpubroker.SessionOpen {
			return cur, &StateError{Op: op, Code: string(se.Code), Session: cur, Err: err}
		}
	}
	return nil, mapError(op, err)
}

// GetPaymentIntent fetches a PaymentIntent with its latest charge expanded, for the hold's
// deadline (capture_before).
func (c *Client) GetPaymentIntent(ctx context.Context, id string) (*gpubroker.PaymentIntent, error) {
	params := &stripe.PaymentIntentParams{}
	params.AddExpand("latest_charge")
	params.Context = ctx
	pi, err := c.api.PaymentIntents.Get(id, params)
	if err != nil {
		return nil, mapError("get payment intent "+id, err)
	}
	return toPaymentIntent(pi), nil
}

// Capture captures the full authorized amount. A PaymentIntent that is not requires_capture
// (already captured, cancelled, lapsed) comes back with a *StateError.
func (c *Client) Capture(ctx context.Context, paymentIntentID, idempotencyKey string) (*gpubroker.PaymentIntent, error) {
	params := &stripe.PaymentIntentCaptureParams{}
	params.Context = ctx
	if idempotencyKey != "" {
		params.SetIdempotencyKey(idempotencyKey)
	}
	pi, err := c.api.PaymentIntents.Capture(paymentIntentID, params)
	if err != nil {
		return c.stateOrError(ctx, "capture payment intent "+paymentIntentID, paymentIntentID, err)
	}
	return toPaymentIntent(pi), nil
}

// Cancel releases the hold. reason is one of Stripe's cancellation reasons (abandoned,
// duplicate, fraudulent, requested_by_customer) or empty. A PaymentIntent that can no longer
// be cancelled (captured, already cancelled) comes back with a *StateError.
func (c *Client) Cancel(ctx context.Context, paymentIntentID, reason, idempotencyKey string) (*gpubroker.PaymentIntent, error) {
	params := &stripe.PaymentIntentCancelParams{}
	if reason != "" {
		params.CancellationReason = stripe.String(reason)
	}
	params.Context = ctx
	if idempotencyKey != "" {
		params.SetIdempotencyKey(idempotencyKey)
	}
	pi, err := c.api.PaymentIntents.Cancel(paymentIntentID, params)
	if err != nil {
		return c.stateOrError(ctx, "cancel payment intent "+paymentIntentID, paymentIntentID, err)
	}
	return toPaymentIntent(pi), nil
}

// refundKeyMetadata is the metadata field naming a refund for FindRefund.
const refundKeyMetadata = "gpubroker_key"

// Refund refunds a captured payment: p.Amount, or in full when it is zero (no amount is sent,
// which Stripe reads as "everything not refunded yet"). p.Key is stored as
// metadata[gpubroker_key] for FindRefund. When Stripe answers that the charge is already
// refunded or the PaymentIntent is not captured, the error is a *StateError carrying the
// PaymentIntent.
func (c *Client) Refund(ctx context.Context, p gpubroker.RefundParams) (*gpubroker.Refund, error) {
	params := &stripe.RefundParams{PaymentIntent: stripe.String(p.PaymentIntentID)}
	if p.Amount > 0 {
		params.Amount = stripe.Int64(p.Amount)
	}
	if p.Reason != "" {
		params.Reason = stripe.String(p.Reason)
	}
	if p.Key != "" {
		params.AddMetadata(refundKeyMetadata, p.Key)
	}
	params.Context = ctx
	if p.IdempotencyKey != "" {
		params.SetIdempotencyKey(p.IdempotencyKey)
	}
	r, err := c.api.Refunds.New(params)
	if err != nil {
		_, err = c.stateOrError(ctx, "refund payment intent "+p.PaymentIntentID, p.PaymentIntentID, err)
		return nil, err
	}
	return toRefund(r), nil
}

// FindRefund lists the PaymentIntent's refunds and returns the one whose
// metadata[gpubroker_key] is key and that returned or is returning money (not failed or
// canceled), or nil, nil when there is none.
func (c *Client) FindRefund(ctx context.Context, paymentIntentID, key string) (*gpubroker.Refund, error) {
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(paymentIntentID)}
	params.Limit = stripe.Int64(100)
	params.Context = ctx
	it := c.api.Refunds.List(params)
	for it.Next() {
		r := it.Refund()
		if r.Metadata[refundKeyMetadata] != key {
			continue
		}
		if s := string(r.Status); s == gpubroker.RefundStatusFailed || s == gpubroker.RefundStatusCanceled {
			continue
		}
		return toRefund(r), nil
	}
	if err := it.Err(); err != nil {
		return nil, mapError("list refunds of payment intent "+paymentIntentID, err)
	}
	return nil, nil
}

func toRefund(r *stripe.Refund) *gpubroker.Refund {
	return &gpubroker.Refund{ID: r.ID, Status: string(r.Status), Amount: r.Amount, Key: r.Metadata[refundKeyMetadata]}
}

// StateError reports that Stripe refused an operation because of the state of the
// PaymentIntent or Checkout Session. It wraps gpubroker.ErrPaymentState and Stripe's error.
type StateError struct {
	// Op is the operation that was refused, e.g. "capture payment intent pi_…".
	Op string
	// Code is Stripe's error code, e.g. payment_intent_unexpected_state.
	Code string
	// PaymentIntent is the current PaymentIntent (capture, cancel, refund).
	PaymentIntent *gpubroker.PaymentIntent
	// Session is the current Checkout Session (expire).
	Session *gpubroker.CheckoutSession
	// Err is Stripe's error.
	Err error
}

// Error names the operation, the current status and Stripe's code.
func (e *StateError) Error() string {
	status := ""
	switch {
	case e.PaymentIntent != nil:
		status = " (payment intent status " + e.PaymentIntent.Status + ")"
	case e.Session != nil:
		status = " (checkout session status " + e.Session.Status + ")"
	}
	return fmt.Sprintf("billing: %s: %v%s: stripe code %s", e.Op, gpubroker.ErrPaymentState, status, e.Code)
}

// Unwrap makes errors.Is(err, gpubroker.ErrPaymentState) and errors.As(err, **stripe.Error)
// work.
func (e *StateError) Unwrap() []error {
	if e.Err == nil {
		return []error{gpubroker.ErrPaymentState}
	}
	return []error{gpubroker.ErrPaymentState, e.Err}
}

// stateOrError turns Stripe's "wrong state" answers into a *StateError with the current
// PaymentIntent, fetched again so the caller sees the state now rather than the one embedded
// in the error. Any other error is mapped by mapError.
func (c *Client) stateOrError(ctx context.Context, op, piID string, err error) (*gpubroker.PaymentIntent, error) {
	var se *stripe.Error
	if !errors.As(err, &se) || (se.Code != stripe.ErrorCodePaymentIntentUnexpectedState && se.Code != stripe.ErrorCodeChargeAlreadyRefunded) {
		return nil, mapError(op, err)
	}
	pi, gerr := c.GetPaymentIntent(ctx, piID)
	if gerr != nil {
		if se.PaymentIntent == nil || se.PaymentIntent.Status == "" {
			// Without a current state the caller cannot decide anything: make it retry.
			return nil, fmt.Errorf("billing: %s: stripe code %s, and fetching the payment intent failed: %w", op, se.Code, gerr)
		}
		// Stripe puts the PaymentIntent in payment_intent_unexpected_state errors; it is a
		// moment older than a fresh fetch but better than nothing.
		pi = toPaymentIntent(se.PaymentIntent)
	}
	return pi, &StateError{Op: op, Code: string(se.Code), PaymentIntent: pi, Err: err}
}

// domainError is a *gpubroker.Error that still unwraps to Stripe's error, so the API layer
// can map the code while logs and tests can reach the details.
type domainError struct {
	op     string
	domain *gpubroker.Error
	cause  error
}

func (e *domainError) Error() string {
	return fmt.Sprintf("billing: %s: %s: %s", e.op, e.domain.Code, e.domain.Message)
}

func (e *domainError) Unwrap() []error { return []error{e.domain, e.cause} }

// mapError classifies a stripe-go error (see the package comment).
func mapError(op string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// Network errors, context cancellation, undecodable answers: transient.
		return fmt.Errorf("billing: %s: %w", op, err)
	}
	status := se.HTTPStatusCode
	switch {
	case status == http.StatusNotFound || se.Code == stripe.ErrorCodeResourceMissing:
		return &domainError{op: op, cause: err, domain: &gpubroker.Error{
			Code: gpubroker.ENOTFOUND, Reason: "stripe_resource_missing", Message: se.Msg}}
	case status == http.StatusTooManyRequests || status >= 500 || status == http.StatusConflict ||
		status == http.StatusUnauthorized || status == http.StatusForbidden:
		// Rate limits, outages, lock timeouts and idempotency_key_in_use pass; a bad key is
		// fixed by configuration, after which the retried job succeeds.
		return fmt.Errorf("billing: %s: stripe status %d: %w", op, status, err)
	case se.Type == stripe.ErrorTypeIdempotency:
		// The same key was used with different parameters: a bug in the caller, permanent.
		return &domainError{op: op, cause: err, domain: &gpubroker.Error{
			Code: gpubroker.ECONFLICT, Reason: "idempotency_key_reused", Message: se.Msg}}
	case status >= 400 && status < 500:
		reason := string(se.Code)
		if reason == "" {
			reason = "stripe_invalid_request"
		}
		return &domainError{op: op, cause: err, domain: &gpubroker.Error{
			Code: gpubroker.EINVALID, Reason: reason, Message: se.Msg}}
	}
	return fmt.Errorf("billing: %s: %w", op, err)
}

func toSession(s *stripe.CheckoutSession) *gpubroker.CheckoutSession {
	out := &gpubroker.CheckoutSession{
		ID:                s.ID,
		URL:               s.URL,
		Status:            string(s.Status),
		PaymentStatus:     string(s.PaymentStatus),
		ClientReferenceID: s.ClientReferenceID,
		AmountTotal:       s.AmountTotal,
		Currency:          string(s.Currency),
	}
	if s.PaymentIntent != nil {
		out.PaymentIntentID = s.PaymentIntent.ID
	}
	if s.ExpiresAt != 0 {
		out.ExpiresAt = time.Unix(s.ExpiresAt, 0).UTC()
	}
	return out
}

func toPaymentIntent(pi *stripe.PaymentIntent) *gpubroker.PaymentIntent {
	out := &gpubroker.PaymentIntent{
		ID:                 pi.ID,
		Status:             string(pi.Status),
		Amount:             pi.Amount,
		AmountCapturable:   pi.AmountCapturable,
		AmountReceived:     pi.AmountReceived,
		Currency:           string(pi.Currency),
		CancellationReason: string(pi.CancellationReason),
	}
	if ch := pi.LatestCharge; ch != nil {
		if ch.PaymentMethodDetails != nil && ch.PaymentMethodDetails.Card != nil && ch.PaymentMethodDetails.Card.CaptureBefore > 0 {
			out.CaptureBefore = time.Unix(ch.PaymentMethodDetails.Card.CaptureBefore, 0).UTC()
		}
		if ch.Created > 0 {
			out.AuthorizedAt = time.Unix(ch.Created, 0).UTC()
		}
		out.AmountRefunded = ch.AmountRefunded
		out.ReceiptURL = ch.ReceiptURL
	}
	return out
}

// slogLeveled adapts slog to stripe-go's logger. stripe-go logs each request at info and each
// 4xx at error; both are routine for us, so they go one level down.
type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) Debugf(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLeveled) Infof(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLeveled) Warnf(format string, v ...any)  { s.l.Info(fmt.Sprintf(format, v...)) }
func (s slogLeveled) Errorf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }
