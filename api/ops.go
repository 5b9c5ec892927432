package api

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/julienschmidt/httprouter"
	"github.com/riverqueue/river/rivertype"

	"gpubroker/postgres"
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

	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// Every state of every kind seen, zeros included, so a kind's first discarded job is a
	// change of a series Prometheus already has.
	b.WriteString("# HELP gpubroker_jobs River jobs by kind and state.\n# TYPE gpubroker_jobs gauge\n")
	if rows, err := s.Pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job GROUP BY 1, 2 ORDER BY 1, 2`); err == nil {
		jobs := map[string]map[string]int64{}
		for rows.Next() {
			var kind, state string
			var n int64
			if rows.Scan(&kind, &state, &n) == nil {
				if jobs[kind] == nil {
					jobs[kind] = map[string]int64{}
				}
				jobs[kind][state] = n
			}
		}
		rows.Close()
		for _, kind := range sortedKeys(jobs) {
			for _, state := range rivertype.JobStates() {
				fmt.Fprintf(&b, "gpubroker_jobs{kind=%q,state=%q} %d\n", kind, state, jobs[kind][string(state)])
			}
		}
	}
	b.WriteString("# HELP gpubroker_pods Pods by status.\n# TYPE gpubroker_pods gauge\n")
	if rows, err := s.Pool.Query(ctx, `SELECT status, count(*) FROM pods GROUP BY 1 ORDER BY 1`); err == nil {
		for rows.Next() {
			var st string
			var n int64
			if rows.Scan(&st, &n) == nil {
				fmt.Fprintf(&b, "gpubroker_pods{status=%q} %d\n", st, n)
			}
		}
		rows.Close()
	}
	// Every audited action, counted: refund.failed (a customer is owed money),
	// provider.config_error, order.refunded … Alert on the rate of the ones that need a human;
	// those are always listed, at 0 before their first event, so increase() sees the first.
	b.WriteString("# HELP gpubroker_audit_events_total Audit events recorded, by action.\n# TYPE gpubroker_audit_events_total counter\n")
	if rows, err := s.Pool.Query(ctx, `SELECT action, count(*) FROM audit_events GROUP BY 1 ORDER BY 1`); err == nil {
		actions := map[string]int64{}
		for _, a := range alertedActions {
			actions[a] = 0
		}
		for rows.Next() {
			var action string
			var n int64
			if rows.Scan(&action, &n) == nil {
				actions[action] = n
			}
		}
		rows.Close()
		if rows.Err() == nil {
			for _, a := range sortedKeys(actions) {
				fmt.Fprintf(&b, "gpubroker_audit_events_total{action=%q} %d\n", a, actions[a])
			}
		}
	}
	writeHealth(ctx, &b, s.Pool)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// alertedActions are the audit actions ops/alerts.yml reads: exported from the start.
var alertedActions = []string{"refund.failed", "email.sandbox_rejected", "lambda.firewall_failed",
	"reconcile.orphan_instance", "reconcile.overdue_pod", "reconcile.refund_queued", "reconcile.provision_requeued", "reconcile.drift"}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// health are the gauges ops/alerts.yml pages on: the state of money and pods that should
// never last, read from the database (every process reports the same values; alert on max).
var health = []struct{ name, help, sql string }{
	{"gpubroker_holds_lapsing_soon", "Undeployed card holds within 24 hours of lapsing (the release job should have run).",
		`SELECT count(*) FROM orders WHERE status = 'authorized' AND hold_expires_at < now() + interval '24 hours'`},
	{"gpubroker_captured_without_pod", "Captured orders whose pod has not been running for 30 minutes since the capture and is not failed (refund pending or made).",
		`SELECT count(*) FROM pods p JOIN orders o ON o.id = p.order_id WHERE o.status = 'captured' AND p.status IN ('deploying', 'provisioning') AND p.captured_at < now() - interval '30 minutes'`},
	{"gpubroker_provisioning_seconds_p95", "95th percentile of Deploy-to-running time over the pods started in the last hour.",
		`SELECT COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)), 0) FROM pods WHERE started_at > now() - interval '1 hour'`},
	{"gpubroker_emails_sent_24h", "Emails sent through the provider in the last 24 hours.",
		`SELECT count(*) FROM emails WHERE status = 'sent' AND sent_at > now() - interval '24 hours'`},
	{"gpubroker_email_bounces_24h", "Permanent bounces and complaints received in the last 24 hours.",
		`SELECT count(*) FROM email_feedback WHERE created_at > now() - interval '24 hours' AND (kind = 'complaint' OR bounce_type = 'Permanent')`},
}

func writeHealth(ctx context.Context, b *strings.Builder, pool *pgxpool.Pool) {
	for _, g := range health {
		var v float64
		if err := pool.QueryRow(ctx, g.sql).Scan(&v); err != nil {
			continue // the scrape still answers; a missing series is itself alertable
		}
		writeGauge(b, g.name, g.help, v)
	}
	if n, err := postgres.CountDriftOrders(ctx, pool); err == nil {
		writeGauge(b, "gpubroker_reconcile_drift_orders", "Orders whose last reconciler check found Stripe disagreeing with them (orders.drift set).", float64(n))
	}
}

func writeGauge(b *strings.Builder, name, help string, v float64) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
}

// handleFunnel reports the journey's conversion: checkouts started, authorized, activated,
// deployed and running, the payment success rate and provisioning time percentiles.
func (s *Server) handleFunnel(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var f struct {
		CheckoutsStarted int64 `json:"checkouts_started"`
		PaidCheckouts    int64 `json:"paid_checkouts"`
		Authorized       int64 `json:"authorized"`
		Activated        int64 `json:"activated"`
		Deployed         int64 `json:"deployed"`
		Running          int64 `json:"running"`     // pods that ever ran (the funnel step)
		RunningNow       int64 `json:"running_now"` // pods running at this moment
		Refunded         int64 `json:"refunded"`
		// Issue 11: extensions paid, pods stopped early with a refund (and its cents), dead pods.
		Extensions             int64    `json:"extensions"`
		EarlyStopRefunds       int64    `json:"early_stop_refunds"`
		EarlyStopRefundedCents int64    `json:"early_stop_refunded_cents"`
		DeadPods               int64    `json:"dead_pods"`
		PaymentSuccessRate     *float64 `json:"payment_success_rate"`
		ProvisionP50           *float64 `json:"provisioning_seconds_p50"`
		ProvisionP95           *float64 `json:"provisioning_seconds_p95"`
		// What the reconciler found (orders in drift now) and repaired, all time.
		Reconcile postgres.ReconcileSummary `json:"reconcile"`
	}
	err := s.Pool.QueryRow(r.Context(), `SELECT
		(SELECT count(*) FROM orders),
		(SELECT count(*) FROM orders WHERE status <> 'free'),
		(SELECT count(*) FROM orders WHERE authorized_at IS NOT NULL),
		(SELECT count(*) FROM accounts WHERE status = 'active'),
		(SELECT count(*) FROM pods WHERE deploy_requested_at IS NOT NULL),
		(SELECT count(*) FROM pods WHERE started_at IS NOT NULL),
		(SELECT count(*) FROM pods WHERE status = 'running'),
		(SELECT count(*) FROM orders WHERE status = 'refunded'),
		(SELECT count(*) FROM extensions WHERE status = 'paid'),
		(SELECT count(DISTINCT pod_id) FROM refunds WHERE reason = 'early_stop' AND stripe_refund_id IS NOT NULL),
		(SELECT COALESCE(sum(amount_cents), 0) FROM refunds WHERE reason = 'early_stop' AND stripe_refund_id IS NOT NULL),
		(SELECT count(*) FROM audit_events WHERE action = 'pod.died'),
		(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)) FROM pods WHERE started_at IS NOT NULL),
		(SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)) FROM pods WHERE started_at IS NOT NULL)`).
		Scan(&f.CheckoutsStarted, &f.PaidCheckouts, &f.Authorized, &f.Activated, &f.Deployed, &f.Running, &f.RunningNow, &f.Refunded, &f.Extensions, &f.EarlyStopRefunds, &f.EarlyStopRefundedCents, &f.DeadPods, &f.ProvisionP50, &f.ProvisionP95)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if f.PaidCheckouts > 0 {
		rate := float64(f.Authorized) / float64(f.PaidCheckouts)
		f.PaymentSuccessRate = &rate
	}
	if f.Reconcile, err = postgres.GetReconcileSummary(r.Context(), s.Pool); err != nil {
		writeError(w, r, err)
		return
	}
	s.auditView(r, "ops.viewed_funnel", "", nil)
	writeJSON(w, http.StatusOK, f)
}
