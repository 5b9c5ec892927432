package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"gpubroker/billing"
	"gpubroker/billing/stripesim"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
	"gpubroker/site"
)

const testPublicURL = "http://localhost:8080"

// testServer is the real router over a fresh test database, a real River client (insert
// only) and the Stripe stand-in, as the api process runs it.
type testServer struct {
	t       testing.TB
	s       *Server
	h       http.Handler
	pool    *pgxpool.Pool
	logs    *syncBuffer
	stripes *stripesim.Server
}

// syncBuffer collects log lines from concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	pool := testdb.New(t)
	rc, err := river.NewClient[pgx.Tx](riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	catalog, err := site.Catalog()
	require.NoError(t, err)
	ss := stripesim.New(stripesim.Config{PublicURL: testPublicURL, Logger: slog.New(slog.DiscardHandler), SweepInterval: -1})
	t.Cleanup(ss.Close)
	stripeSrv := httptest.NewServer(ss)
	t.Cleanup(stripeSrv.Close)
	logs := &syncBuffer{}
	s := &Server{
		Pool: pool, Jobs: rc, Catalog: catalog, PublicURL: testPublicURL,
		Payments:      billing.New(billing.Config{SecretKey: "sk_test_api", APIBase: stripeSrv.URL + stripesim.DefaultPrefix}),
		WebhookSecret: stripesim.DefaultWebhookSecret, ParseWebhook: billing.ParseWebhook,
		AdminPassword: "ops-secret", NoRateLimits: true,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	return &testServer{t: t, s: s, h: s.Handler(), pool: pool, logs: logs, stripes: ss}
}

// do sends a request through the router and returns the status and the raw answer.
func (ts *testServer) do(method, target string, body []byte, header http.Header) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// target is read as a request line, percent escapes included, as a real request is.
	req := httptest.NewRequest(method, target, rd)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	ts.h.ServeHTTP(w, req)
	return w
}

// checkAnswer fails unless the answer is below 500 and, when it is an error, has the
// contract's shape.
func checkAnswer(t testing.TB, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("%s: %d %s", what, w.Code, w.Body.String())
	}
	if p := shapeProblem(w); p != "" {
		t.Fatalf("%s: %s", what, p)
	}
}

// shapeProblem says what is wrong with an error answer, or "" when it has the contract's
// shape: a JSON object with string "error" and "message" (and "fields" only as an object of
// strings), served as JSON. Answers below 400 are not errors.
func shapeProblem(w *httptest.ResponseRecorder) string {
	if w.Code < 400 {
		return ""
	}
	ct, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if ct != "application/json" {
		return fmt.Sprintf("error %d served as %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		return fmt.Sprintf("error %d is not a JSON object: %v: %s", w.Code, err, w.Body.String())
	}
	for _, k := range []string{"error", "message"} {
		var s string
		if err := json.Unmarshal(body[k], &s); err != nil || s == "" {
			return fmt.Sprintf("error %d without a string %q: %s", w.Code, k, w.Body.String())
		}
	}
	for k, v := range body {
		switch k {
		case "error", "message":
		case "fields":
			var f map[string]string
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Sprintf("fields is not an object of strings: %s", w.Body.String())
			}
		default:
			return fmt.Sprintf("unexpected member %q in error answer: %s", k, w.Body.String())
		}
	}
	return ""
}

// signIn creates an account and a session for it and returns the session cookie's value.
func (ts *testServer) signIn(email string) string {
	ts.t.Helper()
	ctx := context.Background()
	var secret string
	require.NoError(ts.t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		a, _, err := postgres.UpsertAccount(ctx, tx, email, "Ada", "")
		if err != nil {
			return err
		}
		secret, _, err = postgres.CreateSession(ctx, tx, a.ID, time.Now())
		return err
	}))
	return secret
}

// call sends a JSON request as the site's pages do (same Origin, the session cookie when given)
// and decodes the JSON answer.
func (ts *testServer) call(method, path string, body any, session string) (int, map[string]any) {
	ts.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		raw, err = json.Marshal(body)
		require.NoError(ts.t, err)
	}
	h := http.Header{"Origin": {testPublicURL}}
	if session != "" {
		h.Set("Cookie", SessionCookie+"="+session)
	}
	w := ts.do(method, path, raw, h)
	checkAnswer(ts.t, method+" "+path, w)
	out := map[string]any{}
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// order is a checkout request.
func order(email, plan, gpu, region string, hours int) map[string]any {
	return map[string]any{"email": email, "name": "Ada Lovelace", "plan": plan, "template": "data-science", "gpu": gpu, "region": region, "hours": hours}
}
