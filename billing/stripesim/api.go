package stripesim

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Stripe statuses the stand-in moves through.
const (
	statusOpen     = "open"
	statusComplete = "complete"
	statusExpired  = "expired"

	piRequiresPaymentMethod = "requires_payment_method"
	piRequiresCapture       = "requires_capture"
	piSucceeded             = "succeeded"
	piCanceled              = "canceled"
)

var currencyRE = regexp.MustCompile(`^[a-z]{3}$`)

// createSession is POST /v1/checkout/sessions for mode=payment with price_data line items.
func (s *Server) createSession(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "mode", "line_items", "payment_intent_data", "client_reference_id",
		"customer_email", "success_url", "cancel_url", "expires_at", "metadata", "expand",
		"currency", "payment_method_types", "locale", "submit_type", "billing_address_collection",
		"allow_promotion_codes"); aerr != nil {
		return nil, aerr, nil
	}
	mode, ok := p.str("mode")
	switch {
	case !ok || mode == "":
		return nil, missingParam("mode"), nil
	case mode == "setup" || mode == "subscription":
		return nil, invalidParam("mode", "The Stripe stand-in supports only mode=payment."), nil
	case mode != "payment":
		return nil, invalidParam("mode", "Invalid mode: must be one of payment, setup, or subscription"), nil
	}
	now := s.now()
	cs := &CheckoutSession{
		ID:                 newID("cs_test_", 58),
		Object:             objectSession,
		Created:            now.Unix(),
		CustomerCreation:   "if_required",
		Metadata:           map[string]string{},
		Mode:               mode,
		PaymentMethodTypes: []string{"card"},
		PaymentStatus:      "unpaid",
		Status:             statusOpen,
		UIMode:             "hosted",
		CaptureMethod:      "automatic",
		ExpiresAt:          now.Add(24 * time.Hour).Unix(),
	}

	items, aerr := p.list("line_items", "line_items")
	if aerr != nil {
		return nil, aerr, nil
	}
	if len(items) == 0 {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_missing", Param: "line_items",
			Message: "`line_items` is required in `payment` mode."}, nil
	}
	for i, it := range items {
		li, aerr := parseLineItem(it, fmt.Sprintf("line_items[%d]", i))
		if aerr != nil {
			return nil, aerr, nil
		}
		if cs.Currency == "" {
			cs.Currency = li.Currency
		} else if li.Currency != cs.Currency {
			return nil, invalidParam(fmt.Sprintf("line_items[%d][price_data][currency]", i),
				"Checkout does not support multiple currencies in one session."), nil
		}
		cs.LineItems = append(cs.LineItems, li)
		cs.AmountSubtotal += li.UnitAmount * li.Quantity
	}
	cs.AmountTotal = cs.AmountSubtotal
	if c, ok := p.str("currency"); ok && strings.ToLower(c) != cs.Currency {
		return nil, invalidParam("currency", "The currency must match the currency of the line items."), nil
	}
	if cs.Currency == "usd" && cs.AmountTotal < 50 {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "amount_too_small", Param: "line_items",
			Message: "The Checkout Session's total amount due must add up to at least $0.50 usd"}, nil
	}
	if cs.AmountTotal > 99999999 {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "amount_too_large", Param: "line_items",
			Message: "The Checkout Session's total amount due must be no more than 99999999."}, nil
	}

	success, ok := p.str("success_url")
	if !ok || success == "" {
		return nil, missingParam("success_url"), nil
	}
	if !validURL(success) {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "url_invalid", Param: "success_url", Message: "Not a valid URL"}, nil
	}
	cs.SuccessURL = success
	if cancel, ok := p.str("cancel_url"); ok && cancel != "" {
		if !validURL(cancel) {
			return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "url_invalid", Param: "cancel_url", Message: "Not a valid URL"}, nil
		}
		cs.CancelURL = ptr(cancel)
	}
	if ref, ok := p.str("client_reference_id"); ok && ref != "" {
		if len(ref) > 200 {
			return nil, invalidParam("client_reference_id", "client_reference_id must be at most 200 characters."), nil
		}
		cs.ClientReferenceID = ptr(ref)
	}
	if email, ok := p.str("customer_email"); ok && email != "" {
		if at := strings.LastIndexByte(email, '@'); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " <>") {
			return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "email_invalid", Param: "customer_email",
				Message: "Invalid email address: " + email}, nil
		}
		cs.CustomerEmail = ptr(email)
	}
	if exp, present, aerr := p.int("expires_at", "expires_at"); aerr != nil {
		return nil, aerr, nil
	} else if present {
		// Stripe counts from its own clock at creation, to the second, with no slack.
		switch d := exp - now.Unix(); {
		case d < 30*60:
			return nil, invalidParam("expires_at", "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation."), nil
		case d > 24*60*60:
			return nil, invalidParam("expires_at", "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation."), nil
		}
		cs.ExpiresAt = exp
	}
	md, aerr := p.metadata("metadata", "metadata")
	if aerr != nil {
		return nil, aerr, nil
	}
	cs.Metadata = md
	if loc, ok := p.str("locale"); ok && loc != "" {
		cs.Locale = ptr(loc)
	}
	if st, ok := p.str("submit_type"); ok && st != "" {
		cs.SubmitType = ptr(st)
	}
	// Stripe would offer every payment method the account has enabled (Klarna, Link, Cash App
	// Pay …), each with its own hold window. GPU Broker's holds are card holds, so the
	// stand-in insists on payment_method_types=[card], stricter than Stripe.
	if pmt, aerr := p.strings("payment_method_types", "payment_method_types"); aerr != nil {
		return nil, aerr, nil
	} else if len(pmt) == 0 {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_missing", Param: "payment_method_types",
			Message: "Missing required param: payment_method_types. The Stripe stand-in requires payment_method_types=[card]: without it Stripe offers every enabled payment method, with holds that are not card holds."}, nil
	} else {
		for i, t := range pmt {
			if t != "card" {
				return nil, invalidParam(fmt.Sprintf("payment_method_types[%d]", i), "The Stripe stand-in supports only card payments (payment_method_types=[card])."), nil
			}
		}
	}

	pid, aerr := p.sub("payment_intent_data", "payment_intent_data")
	if aerr != nil {
		return nil, aerr, nil
	}
	cs.piMetadata = map[string]string{}
	if pid != nil {
		if aerr := pid.unknown("payment_intent_data", "capture_method", "metadata", "description",
			"receipt_email", "statement_descriptor", "statement_descriptor_suffix", "setup_future_usage"); aerr != nil {
			return nil, aerr, nil
		}
		if cm, ok := pid.str("capture_method"); ok {
			switch cm {
			case "manual", "automatic", "automatic_async":
				cs.CaptureMethod = cm
			default:
				return nil, invalidParam("payment_intent_data[capture_method]",
					"Invalid payment_intent_data[capture_method]: must be one of automatic, automatic_async, or manual"), nil
			}
		}
		if cs.piMetadata, aerr = pid.metadata("metadata", "payment_intent_data[metadata]"); aerr != nil {
			return nil, aerr, nil
		}
		if d, ok := pid.str("description"); ok && d != "" {
			cs.piDescription = ptr(d)
		}
	}

	base := s.publicURL
	if base == "" {
		base = requestOrigin(r)
	}
	cs.baseURL = base + s.prefix
	cs.URL = ptr(cs.baseURL + "/checkout/" + cs.ID)
	s.sessions[cs.ID] = cs
	return s.renderSession(cs, p)
}

func parseLineItem(it any, param string) (LineItem, *apiError) {
	f, ok := it.(form)
	if !ok {
		return LineItem{}, invalidParam(param, "Invalid object: "+param+" must be a hash")
	}
	if aerr := f.unknown(param, "price_data", "quantity", "price"); aerr != nil {
		return LineItem{}, aerr
	}
	if _, ok := f["price"]; ok {
		return LineItem{}, invalidParam(param+"[price]", "The Stripe stand-in does not store Prices; use "+param+"[price_data].")
	}
	pd, aerr := f.sub("price_data", param+"[price_data]")
	if aerr != nil {
		return LineItem{}, aerr
	}
	if pd == nil {
		return LineItem{}, missingParam(param + "[price_data]")
	}
	pdp := param + "[price_data]"
	if aerr := pd.unknown(pdp, "currency", "unit_amount", "product_data", "tax_behavior"); aerr != nil {
		return LineItem{}, aerr
	}
	var li LineItem
	cur, _ := pd.str("currency")
	if cur == "" {
		return LineItem{}, missingParam(pdp + "[currency]")
	}
	li.Currency = strings.ToLower(cur)
	if !currencyRE.MatchString(li.Currency) {
		return LineItem{}, invalidParam(pdp+"[currency]", "Invalid currency: "+cur)
	}
	amt, present, aerr := pd.int("unit_amount", pdp+"[unit_amount]")
	switch {
	case aerr != nil:
		return LineItem{}, aerr
	case !present:
		return LineItem{}, missingParam(pdp + "[unit_amount]")
	case amt < 0:
		return LineItem{}, invalidParam(pdp+"[unit_amount]", "This value must be greater than or equal to 0.")
	}
	li.UnitAmount = amt
	prod, aerr := pd.sub("product_data", pdp+"[product_data]")
	if aerr != nil {
		return LineItem{}, aerr
	}
	if prod == nil {
		return LineItem{}, missingParam(pdp + "[product_data]")
	}
	pp := pdp + "[product_data]"
	if aerr := prod.unknown(pp, "name", "description", "images", "metadata", "tax_code"); aerr != nil {
		return LineItem{}, aerr
	}
	li.Name, _ = prod.str("name")
	if strings.TrimSpace(li.Name) == "" {
		return LineItem{}, missingParam(pp + "[name]")
	}
	q, present, aerr := f.int("quantity", param+"[quantity]")
	switch {
	case aerr != nil:
		return LineItem{}, aerr
	case !present:
		return LineItem{}, missingParam(param + "[quantity]")
	case q < 1:
		return LineItem{}, invalidParam(param+"[quantity]", "This value must be greater than or equal to 1.")
	}
	li.Quantity = q
	return li, nil
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// renderSession answers with the session, expanding payment_intent when asked.
func (s *Server) renderSession(cs *CheckoutSession, p form) (any, *apiError, []*event) {
	expand, aerr := p.strings("expand", "expand")
	if aerr != nil {
		return nil, aerr, nil
	}
	if len(expand) == 0 {
		return cs.clone(), nil, nil
	}
	out := map[string]any{}
	if err := roundTrip(cs, &out); err != nil {
		return nil, &apiError{status: 500, Type: typeAPI, Message: err.Error()}, nil
	}
	for _, e := range expand {
		switch e {
		case "payment_intent":
			if cs.PaymentIntent != nil {
				out["payment_intent"] = s.intents[*cs.PaymentIntent].clone()
			}
		default:
			return nil, invalidParam("expand", "This property cannot be expanded ("+e+") by the Stripe stand-in."), nil
		}
	}
	return out, nil, nil
}

func (s *Server) getSession(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	cs, ok := s.sessions[r.PathValue("id")]
	if !ok {
		return nil, noSuch("checkout.session", r.PathValue("id")), nil
	}
	return s.renderSession(cs, p)
}

func (s *Server) expireSession(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "expand"); aerr != nil {
		return nil, aerr, nil
	}
	cs, ok := s.sessions[r.PathValue("id")]
	if !ok {
		return nil, noSuch("checkout.session", r.PathValue("id")), nil
	}
	if cs.Status != statusOpen {
		return nil, &apiError{status: 400, Type: typeInvalidRequest,
			Message: `Only Checkout Sessions with a status in ["open"] can be expired.`}, nil
	}
	ev := s.expireLocked(cs)
	obj, aerr, _ := s.renderSession(cs, p)
	return obj, aerr, []*event{ev}
}

// expireLocked moves an open session to expired and returns checkout.session.expired.
func (s *Server) expireLocked(cs *CheckoutSession) *event {
	cs.Status = statusExpired
	cs.URL = nil
	return s.newEventLocked("checkout.session.expired", cs)
}

func (s *Server) getPaymentIntent(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "expand", "client_secret"); aerr != nil {
		return nil, aerr, nil
	}
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		return nil, noSuch("payment_intent", r.PathValue("id")), nil
	}
	return s.renderPaymentIntent(pi, p)
}

// renderPaymentIntent answers with the PaymentIntent, expanding latest_charge when asked.
func (s *Server) renderPaymentIntent(pi *PaymentIntent, p form) (any, *apiError, []*event) {
	expand, aerr := p.strings("expand", "expand")
	if aerr != nil {
		return nil, aerr, nil
	}
	if len(expand) == 0 {
		return pi.clone(), nil, nil
	}
	out := map[string]any{}
	if err := roundTrip(pi, &out); err != nil {
		return nil, &apiError{status: 500, Type: typeAPI, Message: err.Error()}, nil
	}
	for _, e := range expand {
		switch e {
		case "latest_charge":
			if ch := s.chargeOf(pi); ch != nil {
				c := *ch
				out["latest_charge"] = &c
			}
		default:
			return nil, invalidParam("expand", "This property cannot be expanded ("+e+") by the Stripe stand-in."), nil
		}
	}
	return out, nil, nil
}

func (s *Server) capturePaymentIntent(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "amount_to_capture", "expand", "metadata", "final_capture",
		"statement_descriptor", "statement_descriptor_suffix"); aerr != nil {
		return nil, aerr, nil
	}
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		return nil, noSuch("payment_intent", r.PathValue("id")), nil
	}
	if pi.Status != piRequiresCapture {
		if pi.Status == piSucceeded {
			s.capturesRefused[pi.ID]++
		}
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "payment_intent_unexpected_state",
			DocURL:        "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
			PaymentIntent: pi.clone(),
			Message: "This PaymentIntent could not be captured because it has a status of " + pi.Status +
				". Only a PaymentIntent with one of the following statuses may be captured: requires_capture."}, nil
	}
	amount := pi.AmountCapturable
	if n, present, aerr := p.int("amount_to_capture", "amount_to_capture"); aerr != nil {
		return nil, aerr, nil
	} else if present {
		if n < 1 || n > pi.AmountCapturable {
			return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "amount_too_large", Param: "amount_to_capture",
				Message: fmt.Sprintf("The amount to capture (%d) must be between 1 and the amount capturable (%d).", n, pi.AmountCapturable)}, nil
		}
		amount = n
	}
	md, aerr := p.metadata("metadata", "metadata")
	if aerr != nil {
		return nil, aerr, nil
	}
	for k, v := range md {
		pi.Metadata[k] = v
	}
	pi.Status = piSucceeded
	pi.AmountReceived = amount
	pi.AmountCapturable = 0
	if ch := s.chargeOf(pi); ch != nil {
		ch.Captured = true
		ch.AmountCaptured = amount
		// The part not captured is released, which Stripe reports as refunded.
		ch.AmountRefunded = ch.Amount - amount
		ch.PaymentMethodDetails.Card.CaptureBefore = 0
	}
	s.captures[pi.ID]++
	return pi.clone(), nil, []*event{s.newEventLocked("payment_intent.succeeded", pi)}
}

var cancellationReasons = map[string]bool{
	"abandoned": true, "duplicate": true, "fraudulent": true, "requested_by_customer": true,
}

func (s *Server) cancelPaymentIntent(r *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "cancellation_reason", "expand"); aerr != nil {
		return nil, aerr, nil
	}
	pi, ok := s.intents[r.PathValue("id")]
	if !ok {
		return nil, noSuch("payment_intent", r.PathValue("id")), nil
	}
	reason, _ := p.str("cancellation_reason")
	if reason != "" && !cancellationReasons[reason] {
		return nil, invalidParam("cancellation_reason",
			"Invalid cancellation_reason: must be one of abandoned, duplicate, fraudulent, or requested_by_customer"), nil
	}
	if pi.Status != piRequiresCapture && pi.Status != piRequiresPaymentMethod {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "payment_intent_unexpected_state",
			DocURL:        "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
			PaymentIntent: pi.clone(),
			Message: "You cannot cancel this PaymentIntent because it has a status of " + pi.Status +
				". Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing."}, nil
	}
	ev := s.cancelLocked(pi, reason)
	return pi.clone(), nil, []*event{ev}
}

// cancelLocked cancels a PaymentIntent (reason may be empty) and returns
// payment_intent.canceled. An uncaptured charge is released in full.
func (s *Server) cancelLocked(pi *PaymentIntent, reason string) *event {
	pi.Status = piCanceled
	pi.AmountCapturable = 0
	pi.CanceledAt = ptr(s.now().Unix())
	pi.CancellationReason = nil
	if reason != "" {
		pi.CancellationReason = ptr(reason)
	}
	if ch := s.chargeOf(pi); ch != nil && !ch.Captured {
		ch.AmountRefunded = ch.Amount
		ch.Refunded = true
	}
	return s.newEventLocked("payment_intent.canceled", pi)
}

func (s *Server) chargeOf(pi *PaymentIntent) *Charge {
	if pi.LatestCharge == nil {
		return nil
	}
	return s.charges[*pi.LatestCharge]
}

var refundReasons = map[string]bool{"duplicate": true, "fraudulent": true, "requested_by_customer": true}

func (s *Server) createRefund(_ *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "payment_intent", "charge", "amount", "reason", "metadata", "expand"); aerr != nil {
		return nil, aerr, nil
	}
	var pi *PaymentIntent
	piID, _ := p.str("payment_intent")
	chID, _ := p.str("charge")
	switch {
	case piID != "":
		var ok bool
		if pi, ok = s.intents[piID]; !ok {
			return nil, &apiError{status: 404, Type: typeInvalidRequest, Code: "resource_missing", Param: "payment_intent",
				Message: "No such payment_intent: '" + piID + "'"}, nil
		}
	case chID != "":
		ch, ok := s.charges[chID]
		if !ok {
			return nil, &apiError{status: 404, Type: typeInvalidRequest, Code: "resource_missing", Param: "charge",
				Message: "No such charge: '" + chID + "'"}, nil
		}
		pi = s.intents[ch.PaymentIntent]
	default:
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "parameter_missing",
			Message: "One of the following params should be provided for this request: payment_intent or charge."}, nil
	}
	ch := s.chargeOf(pi)
	if pi.Status != piSucceeded || ch == nil {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "payment_intent_unexpected_state",
			PaymentIntent: pi.clone(),
			Message: "This PaymentIntent has a status of " + pi.Status +
				" and cannot be refunded; only a succeeded (captured) PaymentIntent can. Cancel it to release an uncaptured hold."}, nil
	}
	remaining := ch.AmountCaptured - (ch.AmountRefunded - (ch.Amount - ch.AmountCaptured))
	if remaining <= 0 {
		return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "charge_already_refunded",
			DocURL:  "https://stripe.com/docs/error-codes/charge-already-refunded",
			Message: "Charge " + ch.ID + " has already been refunded."}, nil
	}
	amount := remaining
	if n, present, aerr := p.int("amount", "amount"); aerr != nil {
		return nil, aerr, nil
	} else if present {
		if n < 1 || n > remaining {
			return nil, &apiError{status: 400, Type: typeInvalidRequest, Code: "amount_too_large", Param: "amount",
				Message: fmt.Sprintf("Refund amount (%d) is greater than unrefunded amount on charge (%d)", n, remaining)}, nil
		}
		amount = n
	}
	reason, _ := p.str("reason")
	if reason != "" && !refundReasons[reason] {
		return nil, invalidParam("reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer"), nil
	}
	md, aerr := p.metadata("metadata", "metadata")
	if aerr != nil {
		return nil, aerr, nil
	}
	re := &Refund{
		ID: newID("re_", 24), Object: objectRefund, Amount: amount, Charge: ch.ID, Created: s.now().Unix(),
		Currency: pi.Currency, Metadata: md, PaymentIntent: pi.ID, Status: "succeeded", seq: len(s.refunds),
	}
	if reason != "" {
		re.Reason = ptr(reason)
	}
	s.refunds[re.ID] = re
	ch.AmountRefunded += amount
	ch.Refunded = ch.AmountRefunded >= ch.Amount
	s.refundsN[pi.ID]++
	c := *re
	return &c, nil, []*event{s.newEventLocked("charge.refunded", ch)}
}

// listRefunds is GET /v1/refunds, filtered by payment_intent or charge, newest first, with
// limit and starting_after paging as Stripe's lists have.
func (s *Server) listRefunds(_ *http.Request, p form, _ string) (any, *apiError, []*event) {
	if aerr := p.unknown("", "payment_intent", "charge", "limit", "starting_after", "ending_before", "expand", "created"); aerr != nil {
		return nil, aerr, nil
	}
	limit := int64(10)
	if n, present, aerr := p.int("limit", "limit"); aerr != nil {
		return nil, aerr, nil
	} else if present {
		if n < 1 || n > 100 {
			return nil, invalidParam("limit", "This value must be between 1 and 100."), nil
		}
		limit = n
	}
	piID, _ := p.str("payment_intent")
	chID, _ := p.str("charge")
	after, _ := p.str("starting_after")
	all := s.refundsLocked(piID, chID)
	if after != "" {
		for i, re := range all {
			if re.ID == after {
				all = all[i+1:]
				break
			}
		}
	}
	hasMore := int64(len(all)) > limit
	if hasMore {
		all = all[:limit]
	}
	data := make([]*Refund, 0, len(all))
	for _, re := range all {
		c := *re
		data = append(data, &c)
	}
	return map[string]any{"object": "list", "url": "/v1/refunds", "has_more": hasMore, "data": data}, nil, nil
}

// refundsLocked returns the refunds of a PaymentIntent and of a charge ("" matches any), newest
// first, as Stripe lists them (s.mu held).
func (s *Server) refundsLocked(piID, chargeID string) []*Refund {
	var out []*Refund
	for _, re := range s.refunds {
		if (piID == "" || re.PaymentIntent == piID) && (chargeID == "" || re.Charge == chargeID) {
			out = append(out, re)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].seq > out[j].seq
	})
	return out
}

func (s *Server) getRefund(r *http.Request, _ form, _ string) (any, *apiError, []*event) {
	re, ok := s.refunds[r.PathValue("id")]
	if !ok {
		return nil, noSuch("refund", r.PathValue("id")), nil
	}
	c := *re
	return &c, nil, nil
}

func (s *Server) getEvent(r *http.Request, _ form, _ string) (any, *apiError, []*event) {
	ev, ok := s.eventByID[r.PathValue("id")]
	if !ok {
		return nil, noSuch("event", r.PathValue("id")), nil
	}
	return rawJSON(ev.Raw), nil, nil
}
