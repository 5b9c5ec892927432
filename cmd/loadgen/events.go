package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// eventTemplate is a checkout.session.completed event as Stripe sends it (API 2023-10-16),
// with fixed-width placeholders that each event overwrites in place: the event id, the
// session id and the order id in client_reference_id. Padded to eventSize bytes.
const eventTemplate = `{
  "id": "evt_EEEEEEEEEEEEEEEEEEEEEEEE",
  "object": "event",
  "api_version": "2023-10-16",
  "created": 1764633600,
  "data": {
    "object": {
      "id": "cs_test_SSSSSSSSSSSSSSSSSSSSSSSS",
      "object": "checkout.session",
      "after_expiration": null,
      "allow_promotion_codes": null,
      "amount_subtotal": 3798,
      "amount_total": 3798,
      "automatic_tax": {"enabled": false, "liability": null, "status": null},
      "billing_address_collection": null,
      "cancel_url": "https://gpubroker.dev/get-started/?canceled=1",
      "client_reference_id": "6f1c2a9e-3b7d-4c2a-8e5f-OOOOOOOOOOOO",
      "client_secret": null,
      "consent": null,
      "consent_collection": null,
      "created": 1764633000,
      "currency": "usd",
      "currency_conversion": null,
      "custom_fields": [],
      "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
      "customer": null,
      "customer_creation": "if_required",
      "customer_details": {
        "address": {"city": "Berlin", "country": "DE", "line1": "Invalidenstrasse 116", "line2": null, "postal_code": "10115", "state": null},
        "email": "load.tester@example.com",
        "name": "Load Tester",
        "phone": null,
        "tax_exempt": "none",
        "tax_ids": []
      },
      "customer_email": "load.tester@example.com",
      "expires_at": 1764634860,
      "invoice": null,
      "invoice_creation": {"enabled": false, "invoice_data": {"account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null}},
      "livemode": false,
      "locale": null,
      "metadata": {"order_id": "6f1c2a9e-3b7d-4c2a-8e5f-OOOOOOOOOOOO", "plan": "starter", "gpu": "rtx4090", "region": "eu-central", "hours": "2"},
      "mode": "payment",
      "payment_intent": "pi_test_SSSSSSSSSSSSSSSSSSSSSSSS",
      "payment_link": null,
      "payment_method_collection": "if_required",
      "payment_method_configuration_details": null,
      "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
      "payment_method_types": ["card"],
      "payment_status": "unpaid",
      "phone_number_collection": {"enabled": false},
      "recovered_from": null,
      "setup_intent": null,
      "shipping_address_collection": null,
      "shipping_cost": null,
      "shipping_details": null,
      "shipping_options": [],
      "status": "complete",
      "submit_type": null,
      "subscription": null,
      "success_url": "https://gpubroker.dev/welcome/?session_id={CHECKOUT_SESSION_ID}",
      "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
      "ui_mode": "hosted",
      "url": null
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": "PADDING"},
  "type": "checkout.session.completed"
}`

const eventSize = 2560

var indent = regexp.MustCompile(`\n *`)

// template is eventTemplate padded to eventSize, with the offsets of its placeholders.
type template struct {
	body                  []byte
	evtAt, sessAt, ordAts []int
}

func newTemplate() (*template, error) {
	compact := indent.ReplaceAllString(eventTemplate, "") // Stripe's bodies are indented; ours need the room
	pad := eventSize - len(compact) + len("PADDING")
	if pad < 1 {
		return nil, fmt.Errorf("event template is %d bytes, over %d", len(compact), eventSize)
	}
	body := []byte(strings.Replace(compact, "PADDING", strings.Repeat("x", pad), 1))
	t := &template{body: body}
	t.evtAt = indexAll(body, []byte("EEEEEEEEEEEEEEEEEEEEEEEE"))
	t.sessAt = indexAll(body, []byte("SSSSSSSSSSSSSSSSSSSSSSSS"))
	t.ordAts = indexAll(body, []byte("6f1c2a9e-3b7d-4c2a-8e5f-OOOOOOOOOOOO"))
	if len(t.evtAt) != 1 || len(t.sessAt) != 2 || len(t.ordAts) != 2 {
		return nil, fmt.Errorf("event template placeholders not found")
	}
	return t, nil
}

func indexAll(b, sub []byte) []int {
	var at []int
	for off := 0; ; {
		i := bytes.Index(b[off:], sub)
		if i < 0 {
			return at
		}
		at = append(at, off+i)
		off += i + len(sub)
	}
}

// fill writes event number n of run into dst (a copy of t.body): a unique event id, session
// and payment intent ids, and a well-formed order uuid (no such order exists: the job side is
// measured separately).
func (t *template) fill(dst []byte, run string, n uint64) {
	id := fmt.Appendf(nil, "%s%0*d", run, 24-len(run), n)
	for _, at := range t.evtAt {
		copy(dst[at:], id)
	}
	for _, at := range t.sessAt {
		copy(dst[at:], id)
	}
	hexN := fmt.Appendf(nil, "%012x", n)
	for _, at := range t.ordAts {
		copy(dst[at+24:], hexN)
	}
}

// sign returns a Stripe-Signature header for body at time ts.
func sign(secret []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	t := strconv.FormatInt(ts.Unix(), 10)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
