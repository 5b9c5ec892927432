package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"gpubroker/billing/stripesim"
	"gpubroker/worker"
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

// FuzzTokens spends arbitrary tokens (activation, sign-in and account deletion) and polls
// arbitrary Checkout Session ids, the four endpoints a link or a success page calls with a secret.
func FuzzTokens(f *testing.F) {
	f.Add("dGhpcyBpcyBub3QgYSB0b2tlbg", "cs_test_a1b2c3")
	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, token, sessionID string) {
		body := object(str("token", token))
		for _, path := range []string{"/api/activate", "/api/login/verify", "/api/me/delete"} {
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

// FuzzOps sends arbitrary requests to the ops routes and the River UI behind the same guard
// (api.Server.Ops), with no, wrong or right credentials and any Origin: whatever arrives, no
// 5xx, our routes answer in the contract's shape, and nothing that is not a read with the
// site's Origin and the right password ever reaches a handler that acts.
func FuzzOps(f *testing.F) {
	f.Add(uint8(0), "", "", uint8(2), "", []byte(nil))
	f.Add(uint8(1), "riverui/api/jobs/cancel", "", uint8(2), testPublicURL, []byte(`{"ids":["1"]}`))
	f.Add(uint8(1), "riverui/api/jobs/retry", "", uint8(2), "https://evil.example", []byte(`{"ids":["1"]}`))
	f.Add(uint8(2), "riverui/api/queues/default/pause", "", uint8(2), testPublicURL, []byte(nil))
	f.Add(uint8(0), "orders", "q=%00", uint8(2), "", []byte(nil))
	f.Add(uint8(0), "orders/../../api/me", "", uint8(1), "", []byte(nil))
	f.Add(uint8(0), "riverui/api/jobs", "state=nope&limit=-1", uint8(2), "", []byte(nil))
	ts := newTestServer(f)
	ts.s.TrustedProxyHops = 1 // each input from its own address, so the throttle does not hide the routes
	ui, err := worker.RiverUI(f.Context(), ts.s.Jobs.(*river.Client[pgx.Tx]), slog.New(slog.DiscardHandler))
	require.NoError(f, err)
	mux := http.NewServeMux()
	mux.Handle(worker.RiverUIPrefix+"/", ts.s.Ops(AuditAdmin(ts.pool, ts.s.AdminUser, ui)))
	mux.Handle("/", ts.h)
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, method uint8, suffix, query string, auth uint8, origin string, body []byte) {
		target := "/ops/" + url.PathEscape(suffix)
		target = strings.ReplaceAll(target, "%2F", "/")
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(methods[int(method)%len(methods)], "http://gpubroker.test"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", byte(n.Add(1)>>16), byte(n.Load()>>8), byte(n.Load())))
		switch auth % 3 {
		case 1:
			req.SetBasicAuth("", "wrong")
		case 2:
			req.SetBasicAuth("", "ops-secret")
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s (auth %d, Origin %q): %d %s", req.Method, target, auth%3, origin, w.Code, w.Body.String())
		}
		if !strings.HasPrefix(req.URL.Path, worker.RiverUIPrefix+"/") || w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
			checkAnswer(t, req.Method+" "+target, w) // River UI's own answers have its own shape
		}
		if w.Code < 300 && auth%3 != 2 {
			t.Fatalf("%s %s answered %d without the password", req.Method, target, w.Code)
		}
		read := req.Method == "GET" || req.Method == "HEAD" || req.Method == "OPTIONS"
		if w.Code < 300 && !read && origin != testPublicURL {
			t.Fatalf("%s %s acted with Origin %q", req.Method, target, origin)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" && (w.Code < 300 || w.Code >= 400) {
			t.Fatalf("%s %s may be framed", req.Method, target)
		}
	})
}
