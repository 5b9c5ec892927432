package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The quote is what checkout charges: the same line items and total, the plan fee waived for a
// signed-in buyer whose Pro is active (for their own email only), and the same 422s.
func TestQuoteIsWhatCheckoutCharges(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)

	req := order("quote@example.com", "pro", "a100", "us-east", 3)
	code, q := ts.call("POST", "/api/quote", req, "")
	require.Equal(t, http.StatusOK, code, q)
	require.EqualValues(t, 5437, q["amount_cents"], "$49 fee + 3 × $1.79")
	require.Equal(t, "usd", q["currency"])
	require.Nil(t, q["plan_fee_waived_until"])
	lines := q["line_items"].([]any)
	require.Len(t, lines, 2)
	fee, hours := lines[0].(map[string]any), lines[1].(map[string]any)
	require.Equal(t, "plan_fee", fee["kind"])
	require.Equal(t, "Pro plan (30 days)", fee["name"])
	require.EqualValues(t, 4900, fee["amount_cents"])
	require.Equal(t, "gpu_hours", hours["kind"])
	require.EqualValues(t, 179, hours["unit_amount_cents"])
	require.EqualValues(t, 3, hours["quantity"])
	require.EqualValues(t, 537, hours["amount_cents"])
	code, c := ts.call("POST", "/api/checkout", req, "")
	require.Equal(t, http.StatusCreated, code, c)
	require.Equal(t, q["amount_cents"], c["amount_cents"], "the quote is what checkout charges")

	// Invalid choices: the fields checkout would name.
	bad := order("quote@example.com", "pro", "a100", "nowhere", 0)
	code, q = ts.call("POST", "/api/quote", bad, "")
	require.Equal(t, http.StatusUnprocessableEntity, code)
	_, c = ts.call("POST", "/api/checkout", bad, "")
	require.Equal(t, c["fields"], q["fields"])
	require.Contains(t, q["fields"], "hours")

	// The free trial costs nothing and has no line items.
	code, q = ts.call("POST", "/api/quote", order("quote@example.com", "free", "a10", "us-east", 1), "")
	require.Equal(t, http.StatusOK, code, q)
	require.EqualValues(t, 0, q["amount_cents"])
	require.Empty(t, q["line_items"])

	// A signed-in account whose Pro fee was captured 10 days ago pays no fee on its own email,
	// and the fee on anyone else's.
	session := ts.signIn("pro@example.com")
	ctx := context.Background()
	_, err := ts.pool.Exec(ctx, `UPDATE orders SET account_id = (SELECT id FROM accounts WHERE email = 'pro@example.com'), email = 'pro@example.com',
		status = 'captured', captured_at = now() - interval '10 days' WHERE amount_cents = 5437`)
	require.NoError(t, err)
	mine := order("pro@example.com", "pro", "a100", "us-east", 3)
	code, q = ts.call("POST", "/api/quote", mine, session)
	require.Equal(t, http.StatusOK, code, q)
	require.EqualValues(t, 537, q["amount_cents"])
	until, err := time.Parse(time.RFC3339, q["plan_fee_waived_until"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(20*24*time.Hour), until, time.Minute)
	require.Len(t, q["line_items"], 1)
	code, c = ts.call("POST", "/api/checkout", mine, session)
	require.Equal(t, http.StatusCreated, code, c)
	require.EqualValues(t, 537, c["amount_cents"])
	_, q = ts.call("POST", "/api/quote", order("someone@example.com", "pro", "a100", "us-east", 3), session)
	require.EqualValues(t, 5437, q["amount_cents"], "another email pays the fee")
	require.Nil(t, q["plan_fee_waived_until"])

	// Another site cannot ask.
	w := ts.do("POST", "/api/quote", []byte(`{}`), http.Header{"Origin": {"https://evil.example"}})
	require.Equal(t, http.StatusForbidden, w.Code)
}

// An extension is quoted as POST /api/pods/{id}/extend would charge it, with its refusals.
func TestExtensionQuote(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	p := ts.paidPod("ext@example.com", 3, 10*time.Minute)

	code, q := ts.call("GET", "/api/pods/"+p.id+"/extend?hours=2", nil, p.session)
	require.Equal(t, http.StatusOK, code, q)
	require.EqualValues(t, 2, q["hours"])
	require.EqualValues(t, 358, q["amount_cents"], "2 × $1.79, no plan fee")
	require.Equal(t, "usd", q["currency"])

	code, q = ts.call("GET", "/api/pods/"+p.id+"/extend?hours=166", nil, p.session)
	require.Equal(t, http.StatusUnprocessableEntity, code, "3 + 166 passes Pro's 168")
	require.Contains(t, q["fields"], "hours")
	code, _ = ts.call("GET", "/api/pods/"+p.id+"/extend?hours=x", nil, p.session)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = ts.call("GET", "/api/pods/"+p.id+"/extend?hours=1", nil, ts.signIn("other@example.com"))
	require.Equal(t, http.StatusNotFound, code, "another account's pod")
	code, _ = ts.call("GET", "/api/pods/"+p.id+"/extend?hours=1", nil, "")
	require.Equal(t, http.StatusUnauthorized, code)

	_, err := ts.pool.Exec(context.Background(), `UPDATE pods SET status = 'terminated' WHERE id = $1`, p.id)
	require.NoError(t, err)
	code, q = ts.call("GET", "/api/pods/"+p.id+"/extend?hours=1", nil, p.session)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "not_running", q["error"])
}
