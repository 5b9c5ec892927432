package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// adminHeader is the basic auth the test server's ops routes take (no ADMIN_USER: empty).
func adminHeader() http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(":ops-secret"))}}
}

type auditRow struct {
	Action string
	Detail map[string]any
}

func auditRows(t *testing.T, q postgres.Querier, like string) []auditRow {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT action, detail FROM audit_events WHERE action LIKE $1 ORDER BY id`, like)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		var raw []byte
		if err := r.Scan(&a.Action, &raw); err != nil {
			return a, err
		}
		return a, json.Unmarshal(raw, &a.Detail)
	})
	require.NoError(t, err)
	return out
}

// Every River UI action ops take (retry, cancel, delete jobs; pause, resume, change queues) is
// audited with who took it and on which jobs, before the River UI acts on it, and the River UI
// still reads the whole body; reads are not audited, nor requests that fail basic auth.
func TestAuditAdminRecordsRiverUIActions(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var bodies []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.WriteHeader(http.StatusOK)
	})
	h := (&Server{Pool: pool, PublicURL: testPublicURL, AdminUser: "ops", AdminPassword: "s3cret"}).Ops(AuditAdmin(pool, "ops", next))
	send := func(method, path, body, pass string) int {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r := httptest.NewRequest(method, path, rd)
		r.SetBasicAuth("ops", pass)
		r.Header.Set("Origin", testPublicURL)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}

	require.Equal(t, http.StatusOK, send("GET", "/ops/riverui/api/jobs?state=discarded", "", "s3cret"))
	require.Equal(t, http.StatusUnauthorized, send("POST", "/ops/riverui/api/jobs/delete", `{"ids":["1"]}`, "wrong"))
	require.Empty(t, auditRows(t, pool, "ops.riverui_action"), "reads and refused requests are not actions")

	retry := `{"ids":["12","13"]}`
	require.Equal(t, http.StatusOK, send("POST", "/ops/riverui/api/jobs/retry", retry, "s3cret"))
	require.Equal(t, http.StatusOK, send("POST", "/ops/riverui/api/jobs/cancel", `{"ids":[14]}`, "s3cret"))
	require.Equal(t, http.StatusOK, send("PUT", "/ops/riverui/api/queues/pods/pause", "", "s3cret"))
	require.Equal(t, http.StatusOK, send("PATCH", "/ops/riverui/api/queues/email", `{"concurrency":null}`, "s3cret"))
	require.Equal(t, http.StatusOK, send("DELETE", "/ops/riverui/api/something", "not json", "s3cret"))
	require.Equal(t, []string{"", retry, `{"ids":[14]}`, "", `{"concurrency":null}`, "not json"}, bodies, "the River UI reads the body it was sent")

	got := auditRows(t, pool, "ops.riverui_action")
	require.Len(t, got, 5)
	for _, a := range got {
		require.Equal(t, "ops.riverui_action", a.Action)
		require.Equal(t, "admin:ops", a.Detail["actor"])
	}
	require.Equal(t, map[string]any{"actor": "admin:ops", "method": "POST", "path": "/ops/riverui/api/jobs/retry", "job_ids": []any{12.0, 13.0}}, got[0].Detail)
	require.Equal(t, []any{14.0}, got[1].Detail["job_ids"])
	require.Equal(t, map[string]any{"actor": "admin:ops", "method": "PUT", "path": "/ops/riverui/api/queues/pods/pause"}, got[2].Detail)
	require.Equal(t, "PATCH", got[3].Detail["method"])
	require.NotContains(t, got[4].Detail, "job_ids")

	// No audit, no action: with the database gone the River UI is not reached.
	pool.Close()
	bodies = nil
	require.Equal(t, http.StatusServiceUnavailable, send("POST", "/ops/riverui/api/jobs/retry", retry, "s3cret"))
	require.Empty(t, bodies)
}

// /ops/funnel is audited as the console's pages are, and reports what the reconciler found
// and repaired.
func TestFunnelIsAuditedAndReportsReconcile(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	for _, action := range []string{"reconcile.orphan_instance", "reconcile.orphan_instance", "reconcile.refund_queued", "reconcile.provision_requeued", "reconcile.drift", "reconcile.overdue_pod"} {
		require.NoError(t, postgres.Audit(ctx, ts.pool, postgres.AuditEvent{Action: gpubroker.AuditAction(action)}))
	}
	w := ts.do("GET", "/ops/funnel", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var f struct {
		Reconcile map[string]int64 `json:"reconcile"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &f))
	require.Equal(t, map[string]int64{"drift_orders": 0, "orphan_instances_ended": 2, "refunds_queued": 1, "provisions_requeued": 1, "overdue_pods_ended": 1}, f.Reconcile)
	views := auditRows(t, ts.pool, "ops.viewed_funnel")
	require.Len(t, views, 1)
	require.Equal(t, "admin:", views[0].Detail["actor"])
}

// The series the alerts read exist from the start at 0, so the first discarded job, refund
// failure or reconciler repair is an increase Prometheus sees (a series born at 1 is not).
func TestMetricsExportAlertSeriesFromZero(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	_, err := ts.pool.Exec(ctx, `INSERT INTO river_job (args, kind, queue, max_attempts, state, finalized_at) VALUES ('{}', 'capture', 'payments', 25, 'completed', now())`)
	require.NoError(t, err)
	metrics := func() string {
		w := ts.do("GET", "/metrics", nil, adminHeader())
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	m := metrics()
	for _, line := range []string{
		`gpubroker_jobs{kind="capture",state="completed"} 1`,
		`gpubroker_jobs{kind="capture",state="discarded"} 0`,
		`gpubroker_jobs{kind="capture",state="retryable"} 0`,
		`gpubroker_audit_events_total{action="refund.failed"} 0`,
		`gpubroker_audit_events_total{action="reconcile.orphan_instance"} 0`,
		`gpubroker_audit_events_total{action="reconcile.overdue_pod"} 0`,
		`gpubroker_audit_events_total{action="reconcile.refund_queued"} 0`,
		`gpubroker_audit_events_total{action="reconcile.provision_requeued"} 0`,
		`gpubroker_audit_events_total{action="reconcile.drift"} 0`,
		`gpubroker_audit_events_total{action="lambda.firewall_failed"} 0`, // GPUBrokerLambdaFirewallFailing
		"# TYPE gpubroker_reconcile_drift_orders gauge\ngpubroker_reconcile_drift_orders 0\n",
	} {
		require.Contains(t, m, line)
	}

	require.NoError(t, postgres.Audit(ctx, ts.pool, postgres.AuditEvent{Action: "refund.failed"}))
	o := newOpsOrder(t, ts)
	_, err = ts.pool.Exec(ctx, `UPDATE orders SET drift = 'Stripe: refunded; ours: captured' WHERE id = $1`, o.order.ID)
	require.NoError(t, err)
	ts.collect()
	m = metrics()
	require.Contains(t, m, `gpubroker_audit_events_total{action="refund.failed"} 1`)
	require.Equal(t, 1, strings.Count(m, `gpubroker_audit_events_total{action="refund.failed"}`), "listed once")
	require.Contains(t, m, "\ngpubroker_reconcile_drift_orders 1\n")
}

type opsOrder struct {
	order      *gpubroker.Order
	extSession string
	extPI      string
}

// newOpsOrder is an authorized Pro order with a paid extension, Stripe ids in Stripe's mixed
// case.
func newOpsOrder(t *testing.T, ts *testServer) *opsOrder {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	o := &opsOrder{extSession: "cs_test_ExT2cD", extPI: "pi_3ExTeNsIoN9z"}
	q, err := ts.s.Catalog.Quote(gpubroker.OrderRequest{Email: "ada@example.com", Name: "Ada", Plan: "pro", Template: "developer", GPU: "h100", Region: "us-east", Hours: 1})
	require.NoError(t, err)
	require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		var err error
		var podID string
		if o.order, podID, err = postgres.CreateOrder(ctx, tx, q); err != nil {
			return err
		}
		if _, err := postgres.AuthorizeOrder(ctx, tx, o.order.ID, "cs_test_OrDeR1aB", "pi_3OrDeRxY", now, now.Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		x, err := postgres.CreateExtension(ctx, tx, podID, o.order.ID, 1, 179, "usd")
		if err != nil {
			return err
		}
		_, err = postgres.PayExtension(ctx, tx, x.ID, o.extSession, o.extPI, now)
		return err
	}))
	return o
}

// The console's front page shows the reconciler's counts and the orders in drift, linked to
// their story; an order's page links its extensions' Stripe objects too. Search by an
// extension's PaymentIntent leads to the order.
func TestConsoleShowsReconcileAndExtensions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	o := newOpsOrder(t, ts)
	_, err := ts.pool.Exec(ctx, `UPDATE orders SET drift = 'Stripe: refunded; ours: captured' WHERE id = $1`, o.order.ID)
	require.NoError(t, err)
	require.NoError(t, postgres.Audit(ctx, ts.pool, postgres.AuditEvent{Action: "reconcile.orphan_instance"}))

	w := ts.do("GET", "/ops/", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	page := w.Body.String()
	require.Contains(t, page, `id="reconcile"`)
	require.Contains(t, page, `<a href="/ops/orders/`+o.order.ID+`">`)
	require.Contains(t, page, "Stripe: refunded; ours: captured")
	require.Regexp(t, `id="drift-orders"[^>]*>1<`, page)
	require.Regexp(t, `id="orphans-ended"[^>]*>1<`, page)
	require.Regexp(t, `id="repairs"(?s:.*)reconcile.orphan_instance(?s:.*)none of ours`, page, "the repair, of an instance no pod owns")

	w = ts.do("GET", "/ops/orders/"+o.order.ID, nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	page = w.Body.String()
	require.Contains(t, page, "https://dashboard.stripe.com/payments/"+o.extPI)
	require.Contains(t, page, "https://dashboard.stripe.com/checkout/sessions/"+o.extSession)
	require.Contains(t, page, "Stripe: refunded; ours: captured", "the order's page says it is in drift")

	w = ts.do("GET", "/ops/orders?q="+o.extPI, nil, adminHeader())
	require.Equal(t, http.StatusSeeOther, w.Code)
	require.Equal(t, "/ops/orders/"+o.order.ID, w.Header().Get("Location"))
}

// collect runs the ops read model's collection now, as its interval would: /metrics,
// /ops/funnel and the console serve the numbers of the last one.
func (ts *testServer) collect() {
	ts.t.Helper()
	require.NoError(ts.t, ts.s.OpsView.Collect(context.Background()))
}

// metricValue reads one sample of a /metrics answer ("" when absent).
func metricValue(page, series string) string {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Issue 23 item 4: one definition per number. /ops/funnel, /metrics and the console read one
// snapshot and name the funnel's steps alike; a free trial is "authorized" everywhere (it has
// nothing to authorize), and a step counts only orders that reached the one before.
func TestMetricsFunnelAndConsoleAgree(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	newOpsOrder(t, ts) // authorized Pro order with a paid extension
	free, err := ts.s.Catalog.Quote(gpubroker.OrderRequest{Email: "eve@example.com", Name: "Eve", Plan: "free", Template: "developer", GPU: "a10", Region: "us-east", Hours: 1})
	require.NoError(t, err)
	require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		_, _, err := postgres.CreateOrder(ctx, tx, free)
		return err
	}))
	pending, err := ts.s.Catalog.Quote(gpubroker.OrderRequest{Email: "bob@example.com", Name: "Bob", Plan: "pro", Template: "developer", GPU: "h100", Region: "us-east", Hours: 1})
	require.NoError(t, err)
	require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		_, _, err := postgres.CreateOrder(ctx, tx, pending)
		return err
	}))
	ts.collect()

	w := ts.do("GET", "/ops/funnel", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var funnel map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &funnel))
	w = ts.do("GET", "/metrics", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	metrics := w.Body.String()
	w = ts.do("GET", "/ops/", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	console := w.Body.String()

	want := map[string]int{"checkouts_started": 3, "authorized": 2, "activated": 0, "deployed": 0, "captured": 0, "running": 0}
	for step, n := range want {
		require.EqualValues(t, n, funnel[step], "/ops/funnel %s", step)
		require.Equal(t, strconv.Itoa(n), metricValue(metrics, `gpubroker_funnel_orders{step="`+step+`"}`), "/metrics %s", step)
		require.Regexp(t, `id="funnel-`+step+`"(?s:.*?)<td class="num">`+strconv.Itoa(n)+`</td>`, console, "console %s", step)
	}
	require.EqualValues(t, 0.5, funnel["payment_success_rate"], "one of two paid checkouts authorized")
	require.Contains(t, console, `id="success-rate">50.0%<`)
	require.EqualValues(t, 1, funnel["extensions"])
	require.Equal(t, "3", metricValue(metrics, "gpubroker_pods{status=\"configured\"}"))
	require.Equal(t, "0", metricValue(metrics, "gpubroker_pods{status=\"running\"}"), "every status listed")
	require.Equal(t, "1", metricValue(metrics, "gpubroker_orders{status=\"free\"}"))
	require.Equal(t, "1", metricValue(metrics, "gpubroker_orders{status=\"authorized\"}"))
}

// Issue 23 item 4: a collection that fails (here: slower than its timeout, as the database
// at twice this size would make it) keeps serving the last good numbers, never drops a
// series, and says so: the failure is counted and the last success's time stays, which
// GPUBrokerOpsNumbersStale pages on.
func TestFailedCollectionIsCountedAndLastNumbersServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	require.NoError(t, postgres.Audit(ctx, ts.pool, postgres.AuditEvent{Action: "refund.failed"}))
	ts.collect()
	metrics := func() string {
		w := ts.do("GET", "/metrics", nil, adminHeader())
		require.Equal(t, http.StatusOK, w.Code)
		return w.Body.String()
	}
	before := metrics()
	require.Equal(t, "0", metricValue(before, "gpubroker_collector_failures_total"))
	success := metricValue(before, "gpubroker_collector_last_success_timestamp_seconds")
	require.NotEqual(t, "0", success)

	// The audit table is locked: the collection waits on it past its timeout.
	tx, err := ts.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	ts.s.OpsView.Timeout = 300 * time.Millisecond
	require.Error(t, ts.s.OpsView.Collect(ctx))
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, postgres.Audit(ctx, ts.pool, postgres.AuditEvent{Action: "refund.failed"}))

	after := metrics()
	require.Equal(t, "1", metricValue(after, "gpubroker_collector_failures_total"))
	require.Equal(t, success, metricValue(after, "gpubroker_collector_last_success_timestamp_seconds"), "the numbers are as old as they are")
	require.Equal(t, "1", metricValue(after, `gpubroker_audit_events_total{action="refund.failed"}`), "the last numbers, not none")
	for _, series := range []string{"gpubroker_holds_lapsing_soon", "gpubroker_captured_without_pod", "gpubroker_provisioning_seconds_p95",
		"gpubroker_emails_sent_24h", "gpubroker_email_bounces_24h", "gpubroker_reconcile_drift_orders", `gpubroker_pods{status="running"}`} {
		require.NotEmpty(t, metricValue(after, series), "%s is still exported", series)
	}
	require.Contains(t, ts.logs.String(), "error collecting the ops numbers")
	w := ts.do("GET", "/ops/", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `id="collector-failing"`, "the console says its numbers are old")

	// The next collection catches up.
	ts.s.OpsView.Timeout = 0
	ts.collect()
	after = metrics()
	require.Equal(t, "2", metricValue(after, `gpubroker_audit_events_total{action="refund.failed"}`))
	require.Equal(t, "1", metricValue(after, "gpubroker_collector_failures_total"), "a counter: failures so far")
}

// The story's wording is the console's: postgres returns each source's particulars.
func TestStoryDetailWording(t *testing.T) {
	t.Parallel()
	for want, e := range map[string]postgres.StoryEntry{
		"evt_1 · not processed yet":                           {Source: "webhook", EventID: "evt_1"},
		"evt_2 · processed":                                   {Source: "webhook", EventID: "evt_2", Processed: true},
		"job 7 · retryable · attempt 2 of 10 · last error: x": {Source: "job", JobID: 7, State: "retryable", Attempt: 2, MaxAttempts: 10, LastError: "x"},
		"job 8 · completed · attempt 1 of 3":                  {Source: "job", JobID: 8, State: "completed", Attempt: 1, MaxAttempts: 3},
		"actor=admin:ops, why=it ended":                       {Source: "audit", Audit: map[string]any{"why": "it ended", "actor": "admin:ops"}},
		"sent · bounce":                                       {Source: "email", EmailStatus: "sent", Feedback: "bounce"},
		"failed · refused":                                    {Source: "email", EmailStatus: "failed", EmailError: "refused"},
	} {
		require.Equal(t, want, storyDetail(e))
	}
}

// An email we gave up on (SES refused it for good, or the sandbox kept refusing it past its
// link's life) is counted on the console and in /metrics, not only in its order's story
// (issue 21: "then shown as failed on /ops/").
func TestConsoleCountsFailedEmails(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	_, err := ts.pool.Exec(ctx, `INSERT INTO emails (to_email, kind, subject, text_body, html_body, status, error) VALUES
		('a@example.com', 'activation', 's', 't', 'h', 'failed', 'MessageRejected: Email address is not verified'),
		('b@example.com', 'activation', 's', 't', 'h', 'sent', NULL)`)
	require.NoError(t, err)
	ts.collect()
	w := ts.do("GET", "/ops/", nil, adminHeader())
	require.Equal(t, http.StatusOK, w.Code)
	require.Regexp(t, `id="emails-failed"><span class="err">1 failed in the last 7 days`, w.Body.String())
	w = ts.do("GET", "/metrics", nil, adminHeader())
	require.Contains(t, w.Body.String(), "gpubroker_emails_failed_7d 1")
}
