package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every invalid field is a 422 naming it, and nothing is stored; the price is the API's.
func TestCheckoutValidation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"bad email", order("not-an-email", "pro", "a100", "us-east", 2), "email"},
		{"unknown plan", order("a@example.com", "gold", "a100", "us-east", 2), "plan"},
		{"enterprise is sold by sales", order("a@example.com", "enterprise", "a100", "us-east", 2), "plan"},
		{"unknown gpu", order("a@example.com", "pro", "tpu", "us-east", 2), "gpu"},
		{"gpu not in region", order("a@example.com", "pro", "l40s", "us-west", 2), "region"},
		{"zero hours", order("a@example.com", "pro", "a100", "us-east", 0), "hours"},
		{"too many hours", order("a@example.com", "pro", "a100", "us-east", 1000), "hours"},
		{"free trial on an H100", order("a@example.com", "free", "h100", "us-east", 1), "gpu"},
		{"free trial over an hour", order("a@example.com", "free", "rtx4090", "us-east", 3), "hours"},
		{"not an ssh key", func() map[string]any {
			o := order("a@example.com", "pro", "a100", "us-east", 2)
			o["ssh_public_key"] = "ssh-ed25519 nope"
			return o
		}(), "ssh_public_key"},
	} {
		code, body := ts.call("POST", "/api/checkout", tc.body, "")
		require.Equal(t, http.StatusUnprocessableEntity, code, tc.name)
		require.Contains(t, body["fields"], tc.field, tc.name)
	}
	require.Zero(t, count(t, ts, `SELECT count(*) FROM orders`), "invalid requests store nothing")

	// A price sent by the browser is ignored: the API computes it.
	b := order("p@example.com", "pro", "a100", "us-east", 2)
	b["amount_cents"] = 1
	code, body := ts.call("POST", "/api/checkout", b, "")
	require.Equal(t, http.StatusCreated, code, body)
	require.EqualValues(t, 4900+2*179, body["amount_cents"])
	require.Equal(t, 1, count(t, ts, `SELECT count(*) FROM orders`))

	w := ts.do("POST", "/api/checkout", []byte("{"), nil)
	require.Equal(t, http.StatusBadRequest, w.Code, "malformed JSON")
	checkAnswer(t, "malformed JSON", w)
}

// One address may start 20 checkouts in 10 minutes.
func TestCheckoutRateLimited(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.s.NoRateLimits = false
	// One instant: the limit counts in fixed 10-minute windows, and a window turning
	// mid-loop would start the count again.
	start := time.Now()
	ts.s.Now = func() time.Time { return start }
	var last int
	for i := range 25 {
		last, _ = ts.call("POST", "/api/checkout", order(fmt.Sprintf("r%d@example.com", i), "pro", "a100", "us-east", 1), "")
	}
	require.Equal(t, http.StatusTooManyRequests, last)
}

// The per-email limits count a mailbox, not a spelling: a +tag, Gmail's dots or a full-width
// form of the same address do not buy ten more checkouts or links each.
func TestEmailLimitsCountTheMailbox(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.s.NoRateLimits = false
	start := time.Now()
	ts.s.Now = func() time.Time { return start }
	spellings := []string{"lim.it@gmail.com", "limit+%d@gmail.com", "l.imit+%d@googlemail.com", "ｌimit+%d@gmail.com"}
	codes := map[int]int{}
	for i := range 12 {
		email := spellings[i%len(spellings)]
		if strings.Contains(email, "%d") {
			email = fmt.Sprintf(email, i)
		}
		code, _ := ts.call("POST", "/api/checkout", order(email, "pro", "a100", "us-east", 1), "")
		codes[code]++
	}
	require.Equal(t, map[int]int{http.StatusCreated: 10, http.StatusTooManyRequests: 2}, codes)

	for i := range 6 {
		code, _ := ts.call("POST", "/api/login", map[string]any{"email": fmt.Sprintf("other+%d@example.com", i)}, "")
		if i < 5 {
			require.Equal(t, http.StatusAccepted, code, i)
		} else {
			require.Equal(t, http.StatusTooManyRequests, code, "the sixth sign-in link for one mailbox")
		}
	}
}
