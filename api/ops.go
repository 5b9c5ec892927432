package api

import (
	"context"
	"fmt"
	"gpubroker/postgres"
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
		writeJSON(w, http.StatusServiceUnavailable, readyJSON{Status: "unavailable", Error: "database"})
		return
	}
	writeJSON(w, http.StatusOK, readyJSON{Status: "ready"})
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

// readyJSON is /readyz's answer.
type readyJSON struct {
	Error  string `json:"error,omitempty"`
	Status string `json:"status"`
}

// funnelReport is /ops/funnel: the funnel of every order (opsview's steps, checkouts_started …
// running, the same numbers as gpubroker_funnel_orders), the payment success rate,
// provisioning times, refunds, extensions, dead pods and the reconciler's findings, as of
// collected_at. Its keys are in alphabetical order, as the map it was answered from had them.
type funnelReport struct {
	Activated                      int64                     `json:"activated"`
	Authorized                     int64                     `json:"authorized"`
	Captured                       int64                     `json:"captured"`
	CheckoutsStarted               int64                     `json:"checkouts_started"`
	CollectedAt                    time.Time                 `json:"collected_at"`
	DeadPods                       int64                     `json:"dead_pods"` // pods that died under their customer
	Deployed                       int64                     `json:"deployed"`
	EarlyStopRefundedCents         int64                     `json:"early_stop_refunded_cents"`
	EarlyStopRefunds               int64                     `json:"early_stop_refunds"` // pods stopped early with a refund
	Extensions                     int64                     `json:"extensions"`         // extensions paid
	PaidCheckouts                  int64                     `json:"paid_checkouts"`
	PaymentSuccessRate             *float64                  `json:"payment_success_rate"`
	ProvisioningSecondsP50         *float64                  `json:"provisioning_seconds_p50"` // over every pod that ran
	ProvisioningSecondsP95         *float64                  `json:"provisioning_seconds_p95"`
	ProvisioningSecondsP95LastHour float64                   `json:"provisioning_seconds_p95_last_hour"` // gpubroker_provisioning_seconds_p95
	Reconcile                      postgres.ReconcileSummary `json:"reconcile"`                          // orders in drift now, repairs all time
	Refunded                       int64                     `json:"refunded"`                           // orders refunded in full
	Running                        int64                     `json:"running"`                            // orders whose pod ever ran
	RunningNow                     int64                     `json:"running_now"`                        // pods running at this moment
	Visitors                       int64                     `json:"visitors"`                           // views of "/" (POST /api/pageviews), the step before checkouts_started
}

// handleFunnel reports the journey's conversion from the ops read model's last collection.
func (s *Server) handleFunnel(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	snap, err := s.OpsView.Latest(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	pods, orders, c := snap.PodsByStatus(), snap.Orders, snap.Funnel.FunnelCounts
	f := funnelReport{
		CheckoutsStarted: c.CheckoutsStarted, Authorized: c.Authorized, Activated: c.Activated,
		Deployed: c.Deployed, Captured: c.Captured, Running: c.Running,
		PaidCheckouts: snap.Funnel.PaidCheckouts, PaymentSuccessRate: snap.Funnel.PaymentSuccessRate(),
		RunningNow: pods[gpubroker.PodRunning], Refunded: orders[gpubroker.OrderRefunded],
		Extensions: snap.Extensions, EarlyStopRefunds: snap.EarlyStopRefunds, EarlyStopRefundedCents: snap.EarlyStopRefundedCents,
		DeadPods:               snap.DeadPods,
		ProvisioningSecondsP50: snap.Provisioning.P50, ProvisioningSecondsP95: snap.Provisioning.P95,
		ProvisioningSecondsP95LastHour: snap.ProvisioningP95Hour,
		Reconcile:                      snap.Reconcile, CollectedAt: snap.At,
		Visitors: snap.Funnel.Visitors,
	}
	s.auditView(r, "ops.viewed_funnel", "", nil)
	writeJSON(w, http.StatusOK, f)
}
