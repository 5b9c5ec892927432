package opsview

import (
	"fmt"
	"gpubroker/postgres"
	"io"
	"maps"
	"slices"

	"github.com/riverqueue/river/rivertype"

	"gpubroker"
)

// AlertedActions are the audit actions ops/alerts.yml reads: exported from the start at 0, so
// the first one is an increase Prometheus sees (a series born at 1 is not).
var AlertedActions = []string{"refund.failed", "email.sandbox_rejected", "lambda.firewall_failed",
	"reconcile.orphan_instance", "reconcile.overdue_pod", "reconcile.refund_queued", "reconcile.provision_requeued", "reconcile.drift"}

// WriteMetrics writes the collector's health and the last Snapshot in Prometheus text format.
// The Snapshot's series are the database's, the same on every process (rules take max(), never
// sum()); the collector's are this process's. Before the first good collection only the
// collector's series are written: gpubroker_pods absent is GPUBrokerMetricsMissing, the last
// success at 0 is GPUBrokerOpsNumbersStale.
func (c *Collector) WriteMetrics(w io.Writer) {
	st := c.Status()
	counter(w, "gpubroker_collector_failures_total", "Collections of the ops numbers that failed (an error or over their timeout) in this process; the last good numbers are served meanwhile.")
	fmt.Fprintf(w, "gpubroker_collector_failures_total %d\n", st.Failures)
	var last float64
	if !st.LastSuccess.IsZero() {
		last = float64(st.LastSuccess.UnixMilli()) / 1000
	}
	gauge(w, "gpubroker_collector_last_success_timestamp_seconds", "When the ops numbers served here were collected (Unix time; 0: never). Every other database-backed series is as old as this.", last)
	gauge(w, "gpubroker_collector_duration_seconds", "How long the last good collection of the ops numbers took.", st.Took.Seconds())
	fmt.Fprintf(w, "# HELP gpubroker_collector_interval_seconds How often the ops numbers are collected (OPS_COLLECT_INTERVAL).\n# TYPE gpubroker_collector_interval_seconds gauge\ngpubroker_collector_interval_seconds %g\n", st.Interval.Seconds())

	s := c.Snapshot()
	if s == nil {
		return
	}
	// Every state of every kind seen, zeros included, so a kind's first discarded job is a
	// change of a series Prometheus already has.
	jobs := map[string]map[string]int64{}
	for _, j := range s.Jobs {
		if jobs[j.Kind] == nil {
			jobs[j.Kind] = map[string]int64{}
		}
		jobs[j.Kind][j.State] = j.Count
	}
	gaugeHeader(w, "gpubroker_jobs", "River jobs by kind and state; completed: those finished in the last hour (every other state: all River keeps).")
	for _, kind := range slices.Sorted(maps.Keys(jobs)) {
		for _, state := range rivertype.JobStates() {
			fmt.Fprintf(w, "gpubroker_jobs{kind=%q,state=%q} %d\n", kind, state, jobs[kind][string(state)])
		}
	}
	gaugeHeader(w, "gpubroker_pods", "Pods by status (every status, 0 when none).")
	pods := s.PodsByStatus()
	for _, st := range slices.Sorted(maps.Keys(pods)) {
		fmt.Fprintf(w, "gpubroker_pods{status=%q} %d\n", st, pods[st])
	}
	gaugeHeader(w, "gpubroker_orders", "Orders by status (every status, 0 when none).")
	orders := maps.Clone(s.Orders)
	for _, st := range gpubroker.OrderStatuses {
		orders[st] += 0
	}
	for _, st := range slices.Sorted(maps.Keys(orders)) {
		fmt.Fprintf(w, "gpubroker_orders{status=%q} %d\n", st, orders[st])
	}
	gaugeHeader(w, "gpubroker_funnel_orders", "Orders, all time, that reached each step of the funnel (the steps and their meaning are /ops/funnel's and the console's).")
	for _, step := range s.Funnel.Steps() {
		fmt.Fprintf(w, "gpubroker_funnel_orders{step=%q} %d\n", step.Name, step.Orders)
	}
	gauge(w, "gpubroker_funnel_visitors", "Views of the landing page (/), all time, counted without cookies by POST /api/pageviews: the funnel's first step (/ops/funnel's visitors).", float64(s.Funnel.Visitors))
	// Every audited action, counted: refund.failed (a customer is owed money),
	// provider.config_error, order.refunded … The alerted ones are always listed.
	counter(w, "gpubroker_audit_events_total", "Audit events recorded, by action.")
	actions := maps.Clone(s.Audit)
	for _, a := range AlertedActions {
		actions[a] += 0
	}
	for _, a := range slices.Sorted(maps.Keys(actions)) {
		fmt.Fprintf(w, "gpubroker_audit_events_total{action=%q} %d\n", a, actions[a])
	}
	// The state of money and pods that should never last: ops/alerts.yml pages on them.
	gauge(w, "gpubroker_holds_lapsing_soon", "Undeployed card holds within 24 hours of lapsing (the release job should have run).", float64(s.HoldsLapsingSoon))
	gauge(w, "gpubroker_captured_without_pod", "Captured orders whose pod has not been running for 30 minutes since the capture and is not failed (refund pending or made).", float64(s.CapturedWithoutPod))
	gauge(w, "gpubroker_provisioning_seconds_p95", "95th percentile of Deploy-to-running time over the pods started in the last hour (0 when none).", s.ProvisioningP95Hour)
	gauge(w, "gpubroker_emails_sent_24h", "Emails sent through the provider in the last 24 hours.", float64(s.EmailsSent24h))
	gauge(w, "gpubroker_email_bounces_24h", "Permanent bounces and complaints received in the last 24 hours.", float64(s.EmailBounces24h))
	gauge(w, "gpubroker_emails_failed_7d", "Emails never delivered (refused for good, or by the SES sandbox past their link's life) in the last 7 days.", float64(s.EmailsFailed7d))
	// The pod health watch: one pass a POD_HEALTH_INTERVAL over every running pod.
	var pass postgres.HealthPass
	if s.HealthPass != nil {
		pass = *s.HealthPass
	}
	var passAt float64
	if !pass.StartedAt.IsZero() {
		passAt = float64(pass.StartedAt.UnixMilli()) / 1000
	}
	gauge(w, "gpubroker_pod_health_last_pass_timestamp_seconds", "When the last pass of the pod health watch started (Unix time; 0: never).", passAt)
	gauge(w, "gpubroker_pod_health_pass_seconds", "How long the last pass of the pod health watch took (one list call per provider, every running pod matched).", pass.Seconds)
	gaugeHeader(w, "gpubroker_pod_health_pods", "Running pods the last health pass looked at, by what it found (unknown: their provider could not list its instances).")
	fmt.Fprintf(w, "gpubroker_pod_health_pods{result=\"dead\"} %d\ngpubroker_pod_health_pods{result=\"healthy\"} %d\ngpubroker_pod_health_pods{result=\"unknown\"} %d\n", pass.Dead, pass.Healthy, pass.Unknown)
	gauge(w, "gpubroker_reconcile_drift_orders", "Orders whose last reconciler check found Stripe disagreeing with them (orders.drift set).", float64(s.Reconcile.DriftOrders))
}

func counter(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
}

func gaugeHeader(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
}

func gauge(w io.Writer, name, help string, v float64) {
	gaugeHeader(w, name, help)
	fmt.Fprintf(w, "%s %g\n", name, v)
}
