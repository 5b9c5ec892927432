package stripesim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Test cards, as in Stripe's test mode.
const (
	CardSucceeds = "4242424242424242"
	CardDeclined = "4000000000000002"
)

// PayResult is the outcome of a successful payment on the hosted page.
type PayResult struct {
	SessionID       string
	PaymentIntentID string
	// RedirectURL is the session's success_url with {CHECKOUT_SESSION_ID} replaced.
	RedirectURL string
	// EventID is the checkout.session.completed event.
	EventID string
	// WebhookStatus is the HTTP status of the first delivery attempt; 0 when it got no answer
	// or no WebhookURL is configured (failed attempts are retried in the background).
	WebhookStatus int
}

// Pay pays an open session with a test card, as the hosted page does: 4242 4242 4242 4242
// authorizes (the PaymentIntent is requires_capture for capture_method=manual, the session
// complete with payment_status unpaid, as Stripe reports manual capture), then
// checkout.session.completed is delivered before Pay returns. 4000 0000 0000 0002 returns
// ErrCardDeclined and changes nothing; other numbers ErrInvalidCard; a session that is not
// open ErrSessionNotOpen. Spaces and dashes in the number are ignored.
func (s *Server) Pay(ctx context.Context, sessionID, card string) (*PayResult, error) {
	number := strings.NewReplacer(" ", "", "-", "").Replace(card)
	s.mu.Lock()
	swept := s.sweepLocked()
	res, ev, err := s.payLocked(sessionID, number)
	s.mu.Unlock()
	s.dispatchAll(swept)
	if err != nil {
		return nil, err
	}
	res.WebhookStatus = s.dispatchSync(ctx, ev)
	return res, nil
}

func (s *Server) payLocked(sessionID, number string) (*PayResult, *event, error) {
	cs, ok := s.sessions[sessionID]
	if !ok {
		return nil, nil, fmt.Errorf("%w: checkout session %s", ErrNotFound, sessionID)
	}
	if cs.Status != statusOpen {
		return nil, nil, fmt.Errorf("%w: status %s", ErrSessionNotOpen, cs.Status)
	}
	switch number {
	case CardSucceeds:
	case CardDeclined:
		return nil, nil, ErrCardDeclined
	default:
		return nil, nil, ErrInvalidCard
	}
	now := s.now()
	piID := newID("pi_", 24)
	pi := &PaymentIntent{
		ID:                 piID,
		Object:             objectPaymentIntent,
		Amount:             cs.AmountTotal,
		CaptureMethod:      cs.CaptureMethod,
		ClientSecret:       piID + "_secret_" + newID("", 25),
		ConfirmationMethod: "automatic",
		Created:            now.Unix(),
		Currency:           cs.Currency,
		Description:        cs.piDescription,
		Metadata:           maps.Clone(cs.piMetadata),
		PaymentMethod:      ptr(newID("pm_", 24)),
		PaymentMethodTypes: []string{"card"},
		ReceiptEmail:       cs.CustomerEmail,
	}
	chID := newID("ch_", 24)
	ch := &Charge{
		ID: chID, Object: objectCharge, Amount: cs.AmountTotal, Created: now.Unix(),
		Currency: cs.Currency, Description: cs.piDescription, Metadata: maps.Clone(cs.piMetadata), Paid: true, PaymentIntent: piID,
		PaymentMethod: *pi.PaymentMethod, Status: "succeeded",
		PaymentMethodDetails: PaymentMethodDetails{Type: "card", Card: CardDetails{
			Brand: "visa", Last4: number[len(number)-4:], ExpMonth: 12, ExpYear: now.Year() + 3, Funding: "credit"}},
		// Stripe's receipt_url is a page on pay.stripe.com; the stand-in serves its own.
		ReceiptURL: ptr(cs.baseURL + "/receipts/" + chID),
		items:      slices.Clone(cs.LineItems),
	}
	pi.LatestCharge = ptr(ch.ID)
	if cs.CaptureMethod == "manual" {
		pi.Status = piRequiresCapture
		pi.AmountCapturable = cs.AmountTotal
		ch.PaymentMethodDetails.Card.CaptureBefore = now.Add(s.holdLifetime).Unix()
		// Stripe reports a session whose payment is only authorized as unpaid.
		cs.PaymentStatus = "unpaid"
	} else {
		pi.Status = piSucceeded
		pi.AmountReceived = cs.AmountTotal
		ch.Captured = true
		ch.AmountCaptured = cs.AmountTotal
		cs.PaymentStatus = "paid"
	}
	s.intents[pi.ID] = pi
	s.charges[ch.ID] = ch
	cs.Status = statusComplete
	cs.PaymentIntent = ptr(pi.ID)
	cs.URL = nil
	cs.CustomerDetails = &CustomerDetails{Email: cs.CustomerEmail, TaxExempt: "none", TaxIDs: []string{}}
	ev := s.newEventLocked("checkout.session.completed", cs)
	return &PayResult{
		SessionID:       cs.ID,
		PaymentIntentID: pi.ID,
		RedirectURL:     strings.ReplaceAll(cs.SuccessURL, "{CHECKOUT_SESSION_ID}", cs.ID),
		EventID:         ev.ID,
	}, ev, nil
}

// ExpireSession expires an open session as if its expires_at had passed, emitting
// checkout.session.expired; the first delivery attempt is made before it returns.
func (s *Server) ExpireSession(ctx context.Context, id string) error {
	s.mu.Lock()
	cs, ok := s.sessions[id]
	var ev *event
	switch {
	case !ok:
		s.mu.Unlock()
		return fmt.Errorf("%w: checkout session %s", ErrNotFound, id)
	case cs.Status != statusOpen:
		s.mu.Unlock()
		return fmt.Errorf("%w: status %s", ErrSessionNotOpen, cs.Status)
	default:
		ev = s.expireLocked(cs)
	}
	s.mu.Unlock()
	s.dispatchSync(ctx, ev)
	return nil
}

// LapseHold lets an authorization lapse, as when a hold is not captured within its lifetime:
// the PaymentIntent (requires_capture) becomes canceled with reason automatic, and
// payment_intent.canceled is emitted; the first delivery attempt is made before it returns.
func (s *Server) LapseHold(ctx context.Context, piID string) error {
	s.mu.Lock()
	pi, ok := s.intents[piID]
	var ev *event
	switch {
	case !ok:
		s.mu.Unlock()
		return fmt.Errorf("%w: payment intent %s", ErrNotFound, piID)
	case pi.Status != piRequiresCapture:
		s.mu.Unlock()
		return fmt.Errorf("%w: status %s", ErrWrongState, pi.Status)
	default:
		ev = s.cancelLocked(pi, "automatic")
	}
	s.mu.Unlock()
	s.dispatchSync(ctx, ev)
	return nil
}
