package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"gpubroker/billing"
	"gpubroker/internal/testdb"
	"gpubroker/worker"
)

// benchEvent is a checkout.session.completed event of about 2.5 KB, like Stripe's.
func benchEvent(id string) []byte {
	pad := strings.Repeat("x", 1700)
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2023-10-16","created":1764633600,"type":"checkout.session.completed",`+
		`"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"data":{"object":{"id":"cs_test_%s",`+
		`"object":"checkout.session","amount_total":3798,"currency":"usd","client_reference_id":"6f1c2a9e-3b7d-4c2a-8e5f-0123456789ab",`+
		`"customer_details":{"email":"load.tester@example.com","name":"Load Tester","address":{"city":"Berlin","country":"DE"}},`+
		`"metadata":{"plan":"starter","gpu":"rtx4090","hours":"2"},"payment_intent":"pi_test_%s","payment_status":"unpaid",`+
		`"status":"complete","mode":"payment","custom_text":{"submit":%q}}}}`, id, id, id, pad)
}

// webhookServer is the API on a fresh database with River's insert-only client, as `api` runs.
func webhookServer(t testing.TB, secret string) (*Server, http.Handler) {
	pool := testdb.New(t)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ins, err := worker.NewInsertClient(pool, logger)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Pool: pool, Jobs: ins, WebhookSecret: secret, ParseWebhook: billing.ParseWebhook, Logger: logger, PublicURL: "http://localhost:8080"}
	return s, s.Handler()
}

func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test"
	s, h := webhookServer(t, secret)
	post := func(body []byte, sig string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	count := func(sql string) (n int) {
		require.NoError(t, s.Pool.QueryRow(context.Background(), sql).Scan(&n))
		return n
	}
	body := benchEvent("evt_answers")
	for range 2 { // a redelivery is acknowledged the same way
		w := post(body, sign(body, secret))
		require.Equal(t, http.StatusOK, w.Code)
		require.JSONEq(t, `{"received":true}`, w.Body.String())
		require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
	}
	require.Equal(t, 1, count(`SELECT count(*) FROM stripe_events`))
	require.Equal(t, 1, count(`SELECT count(*) FROM river_job WHERE kind = 'stripe_event'`))

	require.Equal(t, http.StatusBadRequest, post(body, sign(body, "whsec_forged")).Code)
	big := make([]byte, 300<<10)
	require.Equal(t, http.StatusRequestEntityTooLarge, post(big, sign(big, secret)).Code)
	other := benchEvent("evt_other")
	s.Pool.Close()
	require.Equal(t, http.StatusServiceUnavailable, post(other, sign(other, secret)).Code)
}

// Many senders over real HTTP, each event delivered three times by different senders at
// once, with a forged event in the mix: every genuine delivery is answered 200, the forgery
// 400, and each event is stored once with one job, however the deliveries were batched.
func TestWebhookConcurrentRedeliveries(t *testing.T) {
	t.Parallel()
	const secret, senders, events, copies = "whsec_race", 32, 150, 3
	s, h := webhookServer(t, secret)
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body []byte, secret string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sign(body, secret))
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Body.Close()
	}
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Go(func() {
			for k := sender; k < events*copies; k += senders {
				code, err := post(benchEvent(fmt.Sprintf("evt_race_%03d", k%events)), secret)
				if err != nil || code != http.StatusOK {
					t.Errorf("event %d: %d %v", k%events, code, err)
					return
				}
				if k%50 == 0 {
					if code, err := post(benchEvent(fmt.Sprintf("evt_forged_%d", k)), "whsec_forged"); err != nil || code != http.StatusBadRequest {
						t.Errorf("forged event: %d %v", code, err)
					}
				}
			}
		})
	}
	wg.Wait()
	var stored, jobs, jobEvents int
	require.NoError(t, s.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM stripe_events), count(*), count(DISTINCT args->>'event_id') FROM river_job WHERE kind = 'stripe_event'`).
		Scan(&stored, &jobs, &jobEvents))
	require.Equal(t, []int{events, events, events}, []int{stored, jobs, jobEvents})
}

// BenchmarkWebhook runs the webhook handler through the whole middleware on a real database
// (verify, store, enqueue, commit), with production JSON logging to io.Discard, and reports
// the process's CPU per event (user+system, the database excluded) next to allocations. It
// guards the handler's cost per event: compare cpu-µs/op and allocs/op before and after a
// change (go test -run '^$' -bench Webhook ./api/).
func BenchmarkWebhook(b *testing.B) {
	const secret = "whsec_bench"
	_, h := webhookServer(b, secret)
	post := func(body []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/api/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sign(body, secret))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, dup := range []bool{false, true} {
		name := "new"
		if dup {
			name = "duplicate"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			// One body, its id's last 20 digits overwritten per event: the loop costs the
			// handler, not the making of events.
			body := benchEvent(fmt.Sprintf("evt_%s_%020d", name, time.Now().UnixNano()))
			digits := bytes.Index(body, []byte(`","object":"event"`)) - 20
			if dup && post(body) != http.StatusOK {
				b.Fatal("first delivery failed")
			}
			start := cpuTime()
			for i := 0; b.Loop(); i++ {
				if !dup {
					copy(body[digits:], fmt.Appendf(nil, "%020d", i))
				}
				if code := post(body); code != http.StatusOK {
					b.Fatalf("status %d", code)
				}
			}
			reportCPU(b, start)
		})
	}
	// 8 senders at once per CPU: new events share commits (postgres.EventWriter), so this
	// guards the batched path's CPU per event as "new" guards the single one's.
	b.Run("new-concurrent", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		var next atomic.Int64
		run := time.Now().UnixNano()
		start := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				body := benchEvent(fmt.Sprintf("evt_par_%d_%d", run, next.Add(1)))
				if code := post(body); code != http.StatusOK {
					b.Errorf("status %d", code)
					return
				}
			}
		})
		reportCPU(b, start)
	})
}

// cpuTime is the process's CPU time so far, user and system (the database excluded).
func cpuTime() time.Duration {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// reportCPU reports the process's CPU time since start per operation, as cpu-µs/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// sign is a Stripe-Signature header for body, signed now with secret.
func sign(body []byte, secret string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
}
