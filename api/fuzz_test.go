package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76/webhook"

	"gpubroker/internal/stripesim"
)

// Native fuzz tests of the endpoints that take input from anyone on the internet, through the
// real router over a real database, River and the Stripe stand-in. Whatever arrives, the API
// must never answer 5xx (a 5xx tells Stripe and browsers to retry, and hides a bug), and every
// error answer must have the contract's shape. `go test` runs the seeds in
// testdata/fuzz/<FuzzName>/; `make fuzz` explores further.

// jsonText writes s as a JSON string the way a hostile client might: quotes, backslashes and
// control characters escaped, every other byte (invalid UTF-8 included) sent raw.
func jsonText(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case c < 0x20:
			buf.WriteString(`\u00`)
			buf.WriteString(strconv.FormatUint(uint64(c>>4), 16))
			buf.WriteString(strconv.FormatUint(uint64(c&0xf), 16))
		default:
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('"')
}

// jsonValue writes raw as it is when it is a JSON value (huge numbers, deep arrays, objects),
// and as a string otherwise, so the fuzzer reaches the validator with every JSON type.
func jsonValue(buf *bytes.Buffer, raw string) {
	if json.Valid([]byte(raw)) {
		buf.WriteString(raw)
		return
	}
	jsonText(buf, raw)
}

// object builds a JSON object from alternating keys and already-encoded values.
func object(members ...func(*bytes.Buffer)) []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		m(&buf)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func str(key, v string) func(*bytes.Buffer) {
	return func(b *bytes.Buffer) { jsonText(b, key); b.WriteByte(':'); jsonText(b, v) }
}

func raw(key, v string) func(*bytes.Buffer) {
	return func(b *bytes.Buffer) { jsonText(b, key); b.WriteByte(':'); jsonValue(b, v) }
}

var sameOrigin = http.Header{"Origin": {testPublicURL}}

// FuzzWebhook posts arbitrary bodies with arbitrary Stripe-Signature headers, and arbitrary
// bodies correctly signed with the endpoint's secret (signed = true), to the webhook.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":"cs_test_1","client_reference_id":"ord_foreign"}}}`), "", true)
	f.Add([]byte(`{}`), "t=1,v1=00", false)
	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, body []byte, sig string, signed bool) {
		if signed {
			sig = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
				Payload: body, Secret: stripesim.DefaultWebhookSecret, Timestamp: time.Now(),
			}).Header
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if sig != "" {
			h.Set("Stripe-Signature", sig)
		}
		w := ts.do("POST", "/api/stripe/webhook", body, h)
		checkAnswer(t, "webhook", w)
		if !signed && w.Code == http.StatusOK {
			t.Fatalf("an unsigned body was accepted (signature %q): %s", sig, body)
		}
	})
}

// FuzzCheckout sends the checkout form with arbitrary values in every field; hours (and the
// optional key) go in raw when they are JSON, so numbers of any size and nested values reach
// the validator too.
func FuzzCheckout(f *testing.F) {
	f.Add("ada@example.com", "Ada Lovelace", "pro", "data-science", "a100", "us-east", "2", "")
	f.Add("trial@example.com", "Ada", "free", "developer", "rtx4090", "us-east", "1", "ssh-ed25519 AAAA")
	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, email, name, plan, template, gpu, region, hours, key string) {
		body := object(str("email", email), str("name", name), str("plan", plan), str("template", template),
			str("gpu", gpu), str("region", region), raw("hours", hours), raw("ssh_public_key", key))
		w := ts.do("POST", "/api/checkout", body, sameOrigin)
		checkAnswer(t, string(body), w)
		if w.Code == http.StatusCreated && (!utf8.Valid(body) || bytes.Contains(body, []byte(`\u0000`))) {
			t.Fatalf("checkout accepted text no column can hold: %q", body)
		}
	})
}

// FuzzTokens spends arbitrary tokens (activation and sign-in) and polls arbitrary Checkout
// Session ids, the three endpoints a link or a success page calls with a secret.
func FuzzTokens(f *testing.F) {
	f.Add("dGhpcyBpcyBub3QgYSB0b2tlbg", "cs_test_a1b2c3")
	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, token, sessionID string) {
		body := object(str("token", token))
		for _, path := range []string{"/api/activate", "/api/login/verify"} {
			w := ts.do("POST", path, body, sameOrigin)
			checkAnswer(t, path+" "+string(body), w)
			if w.Code == http.StatusOK {
				t.Fatalf("%s accepted a token nobody issued: %q", path, token)
			}
		}
		w := ts.do("GET", "/api/checkout/verify?session_id="+url.QueryEscape(sessionID), nil, nil)
		checkAnswer(t, "verify "+strconv.Quote(sessionID), w)
		if w.Code < 300 {
			t.Fatalf("verify knows a session nobody created: %q: %d", sessionID, w.Code)
		}
	})
}
