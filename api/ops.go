package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
)

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Pool.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "database"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// metrics counts requests per route, method and status, in Prometheus text format.
type metrics struct {
	mu       sync.Mutex
	requests map[string]int64
	seconds  map[string]float64
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests, m.seconds = map[string]int64{}, map[string]float64{}
	}
	key := fmt.Sprintf(`route=%q,method=%q,status="%d"`, route, method, status)
	m.requests[key]++
	m.seconds[key] += d.Seconds()
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var b strings.Builder
	s.metrics.mu.Lock()
	keys := make([]string, 0, len(s.metrics.requests))
	for k := range s.metrics.requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("# HELP gpubroker_http_requests_total HTTP requests served.\n# TYPE gpubroker_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "gpubroker_http_requests_total{%s} %d\n", k, s.metrics.requests[k])
	}
	b.WriteString("# HELP gpubroker_http_request_seconds_total Time spent serving HTTP requests.\n# TYPE gpubroker_http_request_seconds_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "gpubroker_http_request_seconds_total{%s} %g\n", k, s.metrics.seconds[k])
	}
	s.metrics.mu.Unlock()

	// The database's numbers come from the ops read model's last collection, never from a
	// query of this request: a slow database makes them older, which the collector's own
	// series say, never missing.
	// Before the first collection (a collector not started yet) this scrape makes one; one that
	// fails is logged and counted by the collector, and only its own series are written.
	_, _ = s.OpsView.Latest(r.Context())
	s.OpsView.WriteMetrics(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// funnelReport is /ops/funnel: the funnel of every order (opsview.FunnelSteps, the keys
// checkouts_started … running, the same numbers as gpubroker_funnel_orders), the payment
// success rate, provisioning times, refunds, extensions, dead pods and the reconciler's
// findings, as of collected_at.
type funnelReport map[string]any

// handleFunnel reports the journey's conversion from the ops read model's last collection.
func (s *Server) handleFunnel(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	snap, err := s.OpsView.Latest(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	f := funnelReport{}
	for _, step := range snap.Funnel.Steps() {
		f[step.Name] = step.Orders
	}
	pods, orders := snap.PodsByStatus(), snap.Orders
	f["paid_checkouts"] = snap.Funnel.PaidCheckouts
	f["payment_success_rate"] = snap.Funnel.PaymentSuccessRate()
	f["running_now"] = pods[gpubroker.PodRunning]                // pods running at this moment
	f["refunded"] = orders[gpubroker.OrderRefunded]              // orders refunded in full
	f["extensions"] = snap.Extensions                            // extensions paid
	f["early_stop_refunds"] = snap.EarlyStopRefunds              // pods stopped early with a refund
	f["early_stop_refunded_cents"] = snap.EarlyStopRefundedCents //
	f["dead_pods"] = snap.DeadPods                               // pods that died under their customer
	// Over every pod that ran; gpubroker_provisioning_seconds_p95 is the last hour's.
	f["provisioning_seconds_p50"] = snap.Provisioning.P50
	f["provisioning_seconds_p95"] = snap.Provisioning.P95
	f["provisioning_seconds_p95_last_hour"] = snap.ProvisioningP95Hour
	f["reconcile"] = snap.Reconcile // orders in drift now, repairs all time
	f["collected_at"] = snap.At
	s.auditView(r, "ops.viewed_funnel", "", nil)
	writeJSON(w, http.StatusOK, f)
}
