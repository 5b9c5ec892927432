package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/postgres"
)

// sseEvent is one Server-Sent Event as a browser's EventSource dispatches it.
type sseEvent struct{ name, data string }

// eventStream is an open GET /api/pods/{id}/events: its events in order, its comments
// counted, and done closed when the answer ends.
type eventStream struct {
	resp     *http.Response
	events   chan sseEvent
	comments atomic.Int32
	retry    atomic.Value // the retry: field's value
	done     chan struct{}
}

// openStream opens a pod's event stream at base (a server or a proxy) as the dashboard does.
func openStream(t testing.TB, client *http.Client, base, podID, session string) *eventStream {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/pods/"+podID+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cookie", SessionCookie+"="+session)
	resp, err := client.Do(req)
	require.NoError(t, err)
	s := &eventStream{resp: resp, events: make(chan sseEvent, 16), done: make(chan struct{})}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				s.comments.Add(1)
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "retry: "):
				s.retry.Store(strings.TrimPrefix(line, "retry: "))
			}
		}
	}()
	return s
}

// next is the stream's next event, failing after wait.
func (s *eventStream) next(t testing.TB, wait time.Duration, what string) sseEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatalf("%s: the stream ended", what)
	case <-time.After(wait):
		t.Fatalf("%s: no event within %s", what, wait)
	}
	return sseEvent{}
}

// status is the pod status an event carries.
func (e sseEvent) status(t testing.TB) string {
	t.Helper()
	var p Pod
	require.NoError(t, json.Unmarshal([]byte(e.data), &p), e.data)
	return string(p.Status)
}

// streamServer is the test server's router over real HTTP with a PodListener on its database.
// Its ReadTimeout and WriteTimeout are shorter than production's (cmd/gpubroker): a stream
// that outlives them proves it sets its own deadlines.
func streamServer(t testing.TB, ts *testServer) *httptest.Server {
	t.Helper()
	l := postgres.NewPodListener(ts.pool.Config().ConnConfig, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	ts.s.PodChanges = l
	srv := httptest.NewUnstartedServer(ts.h)
	srv.Config.ReadHeaderTimeout, srv.Config.ReadTimeout, srv.Config.WriteTimeout = 5*time.Second, 10*time.Second, 20*time.Second
	srv.Start()
	t.Cleanup(func() {
		ts.s.CloseStreams()
		srv.Close()
		cancel()
		<-done
	})
	return srv
}

// 200 open streams wait on no pool connection (MaxConns 16); a change committed in a
// transaction reaches every stream of that pod, and only those; a pod that ends ends its
// streams. Another account's pod, or no session, is refused as GET /api/pods/{id} refuses.
func TestPodEventsFanOutWithoutPoolConnections(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	require.EqualValues(t, 16, ts.pool.Config().MaxConns)
	srv := streamServer(t, ts)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 300}}
	t.Cleanup(client.CloseIdleConnections)
	ctx := context.Background()

	waiting := ts.authorizedPod("waiting@example.com", 2) // configured: its JSON does not tick
	running := ts.paidPod("running@example.com", 3, 10*time.Minute)

	// Refused as GET /api/pods/{id} refuses.
	for _, c := range []struct {
		id, session string
		code        int
	}{
		{waiting.id, running.session, http.StatusNotFound},
		{"00000000-0000-0000-0000-000000000000", running.session, http.StatusNotFound},
		{"not-a-pod", running.session, http.StatusNotFound},
		{waiting.id, "", http.StatusUnauthorized},
	} {
		s := openStream(t, client, srv.URL, c.id, c.session)
		require.Equal(t, c.code, s.resp.StatusCode, c)
		require.Equal(t, "application/json; charset=utf-8", s.resp.Header.Get("Content-Type"))
		got := ts.do("GET", "/api/pods/"+c.id, nil, http.Header{"Cookie": {SessionCookie + "=" + c.session}})
		body, _ := io.ReadAll(s.resp.Body)
		require.Equal(t, got.Code, s.resp.StatusCode)
		require.JSONEq(t, got.Body.String(), string(body))
	}

	// 200 streams: 120 on the waiting pod, 80 on the running one.
	streams := make([]*eventStream, 200)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			p := waiting
			if i%5 >= 3 {
				p = running
			}
			streams[i] = openStream(t, client, srv.URL, p.id, p.session)
		})
	}
	wg.Wait()
	want := ts.do("GET", "/api/pods/"+waiting.id, nil, http.Header{"Cookie": {SessionCookie + "=" + waiting.session}})
	require.Equal(t, http.StatusOK, want.Code)
	first := make([]sseEvent, len(streams))
	for i, s := range streams {
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		require.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
		require.Equal(t, "no-store", s.resp.Header.Get("Cache-Control"))
		require.Equal(t, "no", s.resp.Header.Get("X-Accel-Buffering"))
		first[i] = s.next(t, 30*time.Second, "the pod at once")
		require.Equal(t, "pod", first[i].name)
		require.Equal(t, "3000", s.retry.Load())
		if i%5 < 3 {
			require.Equal(t, strings.TrimSuffix(want.Body.String(), "\n"), first[i].data, "byte for byte GET /api/pods/{id}'s")
		} else {
			require.Equal(t, "running", first[i].status(t))
		}
	}

	// Idle, the streams hold no connection of the pool.
	require.Eventually(t, func() bool { return ts.pool.Stat().AcquiredConns() == 0 }, 5*time.Second, 10*time.Millisecond,
		"200 idle streams hold %d pool connections", ts.pool.Stat().AcquiredConns())
	t.Logf("200 idle streams: %d acquired, %d open of %d pool connections", ts.pool.Stat().AcquiredConns(), ts.pool.Stat().TotalConns(), ts.pool.Stat().MaxConns())

	// A change in a transaction reaches every stream of its pod, and no other.
	var peak atomic.Int32
	sampling, stopSampling := context.WithCancel(ctx)
	go func() {
		for sampling.Err() == nil {
			peak.Store(max(peak.Load(), ts.pool.Stat().AcquiredConns()))
			time.Sleep(time.Millisecond)
		}
	}()
	tx, err := ts.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE pods SET status = 'deploying', deploy_requested_at = now() WHERE id = $1`, waiting.id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	committed := time.Now()
	for i, s := range streams {
		if i%5 < 3 {
			ev := s.next(t, 30*time.Second, "the change")
			require.Equal(t, "deploying", ev.status(t))
		}
	}
	t.Logf("the change reached its 120 streams %s after the commit", time.Since(committed).Round(time.Millisecond))
	for i, s := range streams {
		if i%5 >= 3 {
			select {
			case ev := <-s.events:
				t.Fatalf("the running pod's stream got %s", ev.data)
			default:
			}
		}
	}

	// The running pod ends: its streams get it, then end; the others stay open.
	_, err = ts.pool.Exec(ctx, `UPDATE pods SET status = 'terminated', terminated_at = now() WHERE id = $1`, running.id)
	require.NoError(t, err)
	for i, s := range streams {
		if i%5 >= 3 {
			require.Equal(t, "terminated", s.next(t, 30*time.Second, "the end").status(t))
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the stream of an ended pod stays open")
			}
		}
	}
	stopSampling()
	t.Logf("peak acquired pool connections while 200 streams read their pods again: %d of %d", peak.Load(), ts.pool.Stat().MaxConns())
	require.LessOrEqual(t, peak.Load(), int32(maxStreamReads+1), "the streams' reads (and the test's own writes) leave the pool to the other requests")
	require.Eventually(t, func() bool { return ts.pool.Stat().AcquiredConns() == 0 }, 5*time.Second, 10*time.Millisecond)

	// Shutting down ends the streams still open.
	ts.s.CloseStreams()
	for i, s := range streams {
		if i%5 < 3 {
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Fatal("a stream outlives CloseStreams")
			}
		}
	}
}

// idleCutConn fails a read when no byte has come from the origin for idle: CloudFront's origin
// read timeout (30 s by default).
type idleCutConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleCutConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(b)
}

// cdn is a reverse proxy in front of target that gives up on a response when the origin
// sends nothing for 30 s, as CloudFront does.
func cdn(t testing.TB, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleCutConn{Conn: c, idle: 30 * time.Second}, nil
	}}
	proxy.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv
}

// Behind a proxy that cuts an origin silent for 30 s, a stream idle for longer stays open on
// its 25 s comments and still delivers a change; without them the proxy cuts it (the proxy
// is real). Both run the real timings, in parallel with the other tests.
func TestPodEventsOutliveTheCDNReadTimeout(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		keepalive time.Duration
	}{
		{"keepalive comments", 0}, // the default, DefaultStreamKeepalive
		{"none", time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			ts.s.StreamKeepalive = c.keepalive
			srv := streamServer(t, ts)
			edge := cdn(t, srv.URL)
			client := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(client.CloseIdleConnections)
			p := ts.authorizedPod("idle@example.com", 1)
			s := openStream(t, client, edge.URL, p.id, p.session)
			require.Equal(t, http.StatusOK, s.resp.StatusCode)
			require.Equal(t, "configured", s.next(t, 10*time.Second, "the pod at once").status(t))

			// Silent for 40 s: longer than the proxy's 30 s.
			select {
			case ev := <-s.events:
				t.Fatalf("an event while idle: %s", ev.data)
			case <-s.done:
				if c.keepalive == 0 {
					t.Fatal("the stream ended while idle despite its comments")
				}
				return // without comments the proxy cuts it: the timeout is real
			case <-time.After(40 * time.Second):
			}
			require.Zero(t, c.keepalive, "the proxy kept a silent stream open for 40 s")
			require.GreaterOrEqual(t, s.comments.Load(), int32(1))

			_, err := ts.pool.Exec(context.Background(), `UPDATE pods SET status = 'deploying' WHERE id = $1`, p.id)
			require.NoError(t, err)
			require.Equal(t, "deploying", s.next(t, 10*time.Second, "the change after 40 s").status(t))
		})
	}
}

// A pod that ended with a refund still to make keeps its stream until the refund is made: the
// refund is pushed too, and then the stream ends.
func TestPodEventsStayUntilTheRefundIsMade(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	srv := streamServer(t, ts)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	ctx := context.Background()
	p := ts.authorizedPod("refund@example.com", 1)
	_, err := ts.pool.Exec(ctx, `UPDATE orders SET status = 'captured', captured_at = now() WHERE id = $1`, p.orderID)
	require.NoError(t, err)
	_, err = ts.pool.Exec(ctx, `INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours)
		SELECT id, 'order', payment_intent_id, amount_cents, hours FROM orders WHERE id = $1`, p.orderID)
	require.NoError(t, err)
	s := openStream(t, client, srv.URL, p.id, p.session)
	require.Equal(t, http.StatusOK, s.resp.StatusCode)
	require.Equal(t, "configured", s.next(t, 10*time.Second, "the pod at once").status(t))

	// Captured and never started: refunded in full, due until Stripe has made it.
	_, err = ts.pool.Exec(ctx, `UPDATE pods SET status = 'failed', error = 'no capacity' WHERE id = $1`, p.id)
	require.NoError(t, err)
	var failed Pod
	require.NoError(t, json.Unmarshal([]byte(s.next(t, 10*time.Second, "the end").data), &failed))
	require.Equal(t, "failed", string(failed.Status))
	require.Positive(t, failed.RefundDueCents)
	select {
	case <-s.done:
		t.Fatal("the stream ended with a refund still due")
	case <-time.After(300 * time.Millisecond):
	}

	_, err = ts.pool.Exec(ctx, `INSERT INTO refunds (payment_id, pod_id, amount_cents, idempotency_key, stripe_refund_id, reason, refunded_at)
		SELECT y.id, $2, y.amount_cents, 'refund-' || y.id || '-1', 're_1', 'not_started', now() FROM payments y WHERE y.order_id = $1`, p.orderID, p.id)
	require.NoError(t, err)
	var refunded Pod
	require.NoError(t, json.Unmarshal([]byte(s.next(t, 10*time.Second, "the refund").data), &refunded))
	require.Zero(t, refunded.RefundDueCents)
	require.Equal(t, failed.PaidCents, refunded.RefundedCents)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of an ended, refunded pod stays open")
	}
}
