package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hostile bytes (NUL, invalid UTF-8) in a query, a path or a JSON field are the client's
// mistake: 400 or 404 in the contract's error shape, never "we cannot reach our database".
func TestHostileInputIsNotAnOutage(t *testing.T) {
	ts := newTestServer(t)
	origin := http.Header{"Origin": {testPublicURL}, "Cookie": {SessionCookie + "=" + ts.signIn("ada@example.com")}}
	cases := []struct {
		method, target, body string
	}{
		{"GET", "/api/checkout/verify?session_id=%00", ""},
		{"GET", "/api/checkout/verify?session_id=cs_%ff%fe", ""},
		{"GET", "/api/checkout/verify?session_id=cs_test%00abc", ""},
		{"GET", "/api/pods/%00", ""},
		{"POST", "/api/contact", `{"name":"Ada\u0000","email":"ada@example.com","company":"","message":"hello there, I want GPUs"}`},
		{"POST", "/api/contact", "{\"name\":\"Ada\xff\",\"email\":\"ada@example.com\",\"company\":\"\",\"message\":\"hello there, I want GPUs\"}"},
		{"POST", "/api/login", `{"email":"ada\u0000@example.com"}`},
		{"POST", "/api/activate", `{"token":"\u0000"}`},
		{"POST", "/api/login/verify", "{\"token\":\"\xc3\x28\"}"},
		{"POST", "/api/checkout", `{"email":"ada@example.com","name":"Ada\u0000","plan":"pro","template":"data-science","gpu":"a100","region":"us-east","hours":2}`},
	}
	for _, tc := range cases {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		w := ts.do(tc.method, tc.target, body, origin)
		what := tc.method + " " + tc.target + " " + tc.body
		assert.Contains(t, []int{400, 404, 422}, w.Code, "%s: %s", what, w.Body.String())
		assert.Empty(t, shapeProblem(w), what)
	}
	require.Equal(t, 0, count(t, ts, `SELECT count(*) FROM contact_messages`))
	require.Equal(t, 0, count(t, ts, `SELECT count(*) FROM orders`))
}

// A store error that is neither an outage nor bad input is a bug: 500, with its cause logged
// next to the request id. Only a real outage is a 503.
func TestStoreErrorsAreClassified(t *testing.T) {
	ts := newTestServer(t)
	cases := []struct {
		err    error
		status int
		reason string
	}{
		{&pgconn.PgError{Code: "42601", Message: "syntax error at or near \"SELEC\""}, 500, "internal"},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, 503, "unavailable"},
		{&pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}, 503, "unavailable"},
		{&pgconn.PgError{Code: "22021", Message: "invalid byte sequence for encoding \"UTF8\": 0x00"}, 400, "bad_request"},
		{context.DeadlineExceeded, 503, "unavailable"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", "/api/x", nil)
		req.Header.Set("X-Request-Id", "req-"+tc.reason)
		rec := httptest.NewRecorder()
		ts.s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, tc.err) })).ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, "%v", tc.err)
		require.Empty(t, shapeProblem(rec), "%v", tc.err)
		require.Contains(t, rec.Body.String(), `"error":"`+tc.reason+`"`)
	}
	logs := ts.logs.String()
	require.Contains(t, logs, "syntax error at or near")
	require.Contains(t, logs, `"request_id":"req-internal"`)
	require.Contains(t, logs, "terminating connection due to administrator command")
}

func count(t *testing.T, ts *testServer, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, ts.pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func TestHasNUL(t *testing.T) {
	for body, want := range map[string]bool{
		`{"a":"b"}`:            false,
		`{"a":"\u0000"}`:       true,
		`{"a":"x\u0000y"}`:     true,
		`{"ignored":"\u0000"}`: true,
		`{"a":"\\u0000"}`:      false, // a backslash followed by the text u0000
		`{"a":"\\\u0000"}`:     true,
		"{\"a\":\"\x00\"}":     true,
		`{"a":"\u00001"}`:      true,
		`{"a":"\u0001"}`:       false,
		`\`:                    false,
	} {
		require.Equal(t, want, hasNUL([]byte(body)), body)
	}
}

// A stopped database is the one store failure that is a 503 (clients and Stripe retry).
func TestStoppedDatabaseIs503(t *testing.T) {
	ts := newTestServer(t)
	ts.pool.Close()
	for _, tc := range []struct{ method, target, body string }{
		{"GET", "/api/checkout/verify?session_id=cs_test_1", ""},
		{"POST", "/api/contact", `{"name":"Ada","email":"ada@example.com","company":"","message":"hello there, I want GPUs"}`},
		{"POST", "/api/activate", `{"token":"abc"}`},
	} {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		w := ts.do(tc.method, tc.target, body, http.Header{"Origin": {testPublicURL}})
		require.Equal(t, http.StatusServiceUnavailable, w.Code, "%s %s: %s", tc.method, tc.target, w.Body.String())
		require.Empty(t, shapeProblem(w))
		require.Contains(t, w.Body.String(), `"error":"unavailable"`)
	}
	require.Contains(t, ts.logs.String(), "closed pool", "the cause is logged")
}
