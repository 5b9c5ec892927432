package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
)

// ConsoleSummary is the ops console's front page for a window of time.
type ConsoleSummary struct {
	Since              time.Time
	Funnel             []Count // checkouts → authorized → activated → deployed → running
	PaymentSuccessRate *float64
	Provisioning       []ProvisioningDay
	Refunds            []RefundRow
	LapsingHolds       []HoldRow
	Pods               []PodCount
	Retryable          int64
	Discarded          int64
	RefundFailures     []RefundFailure
	CapturedWithoutPod []WaitingPod
	LastWebhookAt      *time.Time
	WebhooksWaiting    int64 // stored more than 5 minutes ago and not processed
	EmailsSent24h      int64
	EmailBounces24h    int64 // permanent bounces and complaints
	Reconcile          ReconcileSummary
	Drift              []DriftRow
	Repairs            []RepairRow
}

// RepairRow is one repair the reconciler made, with the order it concerns when it knows one.
type RepairRow struct {
	At      time.Time
	Action  string
	OrderID string // "" for an instance no pod of ours owns
	Detail  string
}

// RefundFailure is a refund attempt Stripe refused.
type RefundFailure struct {
	At                   time.Time
	OrderID              string
	Attempt, MaxAttempts string
	Error                string
}

// WaitingPod is a captured order whose pod is not running 30 minutes after the capture.
type WaitingPod struct {
	OrderID    string
	Email      string
	Status     gpubroker.PodStatus
	CapturedAt time.Time
}

// ReconcileSummary is what the reconciler found and repaired, all time.
type ReconcileSummary struct {
	DriftOrders          int64 `json:"drift_orders"`
	OrphanInstancesEnded int64 `json:"orphan_instances_ended"`
	RefundsQueued        int64 `json:"refunds_queued"`
	ProvisionsRequeued   int64 `json:"provisions_requeued"`
	OverduePodsEnded     int64 `json:"overdue_pods_ended"`
}

// DriftRow is an order whose last check found Stripe disagreeing with it.
type DriftRow struct {
	OrderID string
	Email   string
	Drift   string
}

// GetReconcileSummary counts the orders the reconciler last found in drift and the repairs it
// audited (reconcile.orphan_instance, reconcile.overdue_pod, reconcile.refund_queued,
// reconcile.provision_requeued).
func GetReconcileSummary(ctx context.Context, q Querier) (ReconcileSummary, error) {
	var r ReconcileSummary
	err := q.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE action = 'reconcile.orphan_instance'),
		count(*) FILTER (WHERE action = 'reconcile.refund_queued'),
		count(*) FILTER (WHERE action = 'reconcile.provision_requeued'),
		count(*) FILTER (WHERE action = 'reconcile.overdue_pod')
		FROM audit_events WHERE action LIKE 'reconcile.%'`).Scan(&r.OrphanInstancesEnded, &r.RefundsQueued, &r.ProvisionsRequeued, &r.OverduePodsEnded)
	if err != nil {
		return r, err
	}
	r.DriftOrders, err = CountDriftOrders(ctx, q)
	return r, err
}

// CountDriftOrders is how many orders the reconciler's last check found disagreeing with
// Stripe (orders.drift set).
func CountDriftOrders(ctx context.Context, q Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM orders WHERE drift IS NOT NULL`).Scan(&n)
	return n, err
}

// DriftOrders lists up to limit orders in drift, newest first.
func DriftOrders(ctx context.Context, q Querier, limit int) ([]DriftRow, error) {
	rows, err := q.Query(ctx, `SELECT id::text, email, drift FROM orders WHERE drift IS NOT NULL ORDER BY created_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DriftRow])
}

// Count is a named count.
type Count struct {
	Name  string
	Count int64
}

// ProvisioningDay is the Deploy-to-running time of the pods that started on one day.
type ProvisioningDay struct {
	Day      time.Time
	Pods     int64
	P50, P95 float64 // seconds
}

// RefundRow is one refund made, with its reason.
type RefundRow struct {
	At             time.Time
	OrderID        string
	Reason         string
	AmountCents    int64
	StripeRefundID string     // empty until Stripe made it (or when it was found made by hand)
	RefundedAt     *time.Time // nil: planned, not made yet
}

// HoldRow is an undeployed hold close to its deadline.
type HoldRow struct {
	OrderID   string
	Email     string
	ExpiresAt time.Time
}

// PodCount is how many pods are in a status at a provider.
type PodCount struct {
	Status   gpubroker.PodStatus
	Provider string
	Count    int64
}

// GetConsoleSummary reads the console's front page for orders and pods since the given time.
func GetConsoleSummary(ctx context.Context, q Querier, since time.Time) (*ConsoleSummary, error) {
	s := &ConsoleSummary{Since: since}
	var checkouts, paid, authorized, activated, deployed, running int64
	err := q.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM orders WHERE created_at >= $1),
		(SELECT count(*) FROM orders WHERE created_at >= $1 AND status <> 'free'),
		(SELECT count(*) FROM orders WHERE created_at >= $1 AND (authorized_at IS NOT NULL OR status = 'free')),
		(SELECT count(*) FROM orders o JOIN accounts a ON a.id = o.account_id WHERE o.created_at >= $1 AND a.status = 'active'),
		(SELECT count(*) FROM pods WHERE created_at >= $1 AND deploy_requested_at IS NOT NULL),
		(SELECT count(*) FROM pods WHERE created_at >= $1 AND started_at IS NOT NULL),
		(SELECT count(*) FROM river_job WHERE state = 'retryable'),
		(SELECT count(*) FROM river_job WHERE state = 'discarded')`, since).
		Scan(&checkouts, &paid, &authorized, &activated, &deployed, &running, &s.Retryable, &s.Discarded)
	if err != nil {
		return nil, err
	}
	s.Funnel = []Count{{"Checkouts started", checkouts}, {"Authorized", authorized}, {"Activated", activated}, {"Deployed", deployed}, {"Running", running}}
	var paidAuthorized int64
	if err := q.QueryRow(ctx, `SELECT count(*) FROM orders WHERE created_at >= $1 AND status <> 'free' AND authorized_at IS NOT NULL`, since).Scan(&paidAuthorized); err != nil {
		return nil, err
	}
	if paid > 0 {
		rate := float64(paidAuthorized) / float64(paid)
		s.PaymentSuccessRate = &rate
	}

	rows, err := q.Query(ctx, `SELECT date_trunc('day', started_at), count(*),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)),
		percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at))
		FROM pods WHERE started_at >= $1 GROUP BY 1 ORDER BY 1`, since)
	if err != nil {
		return nil, err
	}
	if s.Provisioning, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ProvisioningDay]); err != nil {
		return nil, err
	}
	// The refunds ledger, whatever the reason: a pod that could not start (not_started), an
	// early stop, a dead pod, an extension paid after its pod stopped (late_extension);
	// planned ones are listed too until they are made, as a customer is owed them.
	rows, err = q.Query(ctx, `SELECT r.created_at, y.order_id::text, r.reason, r.amount_cents, COALESCE(r.stripe_refund_id, ''), r.refunded_at
		FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE r.created_at >= $1 OR r.refunded_at IS NULL
		ORDER BY r.created_at DESC, r.id DESC LIMIT 100`, since)
	if err != nil {
		return nil, err
	}
	if s.Refunds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RefundRow]); err != nil {
		return nil, err
	}
	// Refund attempts Stripe refused in the last day (jobs/refund.go and
	// jobs/unused_hours_refund.go audit each one; the latter knows only the pod).
	rows, err = q.Query(ctx, `SELECT a.created_at, COALESCE(a.order_id, p.order_id)::text, COALESCE(a.detail->>'attempt', '?'),
		COALESCE(a.detail->>'max_attempts', '?'), COALESCE(a.detail->>'error', '')
		FROM audit_events a LEFT JOIN pods p ON p.id = a.pod_id
		WHERE a.action = 'refund.failed' AND a.created_at > now() - interval '24 hours'
		ORDER BY a.id DESC LIMIT 20`)
	if err != nil {
		return nil, err
	}
	if s.RefundFailures, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RefundFailure]); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT o.id::text, o.email, p.status, p.captured_at FROM pods p JOIN orders o ON o.id = p.order_id
		WHERE o.status = 'captured' AND p.status IN ('deploying', 'provisioning') AND p.captured_at < now() - interval '30 minutes'
		ORDER BY p.captured_at LIMIT 50`)
	if err != nil {
		return nil, err
	}
	if s.CapturedWithoutPod, err = pgx.CollectRows(rows, pgx.RowToStructByPos[WaitingPod]); err != nil {
		return nil, err
	}
	err = q.QueryRow(ctx, `SELECT
		(SELECT max(received_at) FROM stripe_events),
		(SELECT count(*) FROM stripe_events WHERE processed_at IS NULL AND received_at < now() - interval '5 minutes'),
		(SELECT count(*) FROM emails WHERE status = 'sent' AND sent_at > now() - interval '24 hours'),
		(SELECT count(*) FROM email_feedback WHERE created_at > now() - interval '24 hours' AND (kind = 'complaint' OR bounce_type = 'Permanent'))`).
		Scan(&s.LastWebhookAt, &s.WebhooksWaiting, &s.EmailsSent24h, &s.EmailBounces24h)
	if err != nil {
		return nil, err
	}
	if s.Reconcile, err = GetReconcileSummary(ctx, q); err != nil {
		return nil, err
	}
	if s.Drift, err = DriftOrders(ctx, q, 50); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT a.created_at, a.action, COALESCE(a.order_id, p.order_id)::text, a.detail
		FROM audit_events a LEFT JOIN pods p ON p.id = a.pod_id
		WHERE a.action IN ('reconcile.orphan_instance', 'reconcile.overdue_pod', 'reconcile.refund_queued', 'reconcile.provision_requeued')
		ORDER BY a.id DESC LIMIT 20`)
	if err != nil {
		return nil, err
	}
	if s.Repairs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (RepairRow, error) {
		var r RepairRow
		var orderID *string
		var detail map[string]any
		err := row.Scan(&r.At, &r.Action, &orderID, &detail)
		r.OrderID, r.Detail = deref(orderID), compact(detail)
		return r, err
	}); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT id::text, email, hold_expires_at FROM orders
		WHERE status = 'authorized' AND hold_expires_at < now() + interval '48 hours' ORDER BY hold_expires_at LIMIT 50`)
	if err != nil {
		return nil, err
	}
	if s.LapsingHolds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[HoldRow]); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT status, COALESCE(provider, '—'), count(*) FROM pods GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	s.Pods, err = pgx.CollectRows(rows, pgx.RowToStructByPos[PodCount])
	return s, err
}

// OrderHit is one search result.
type OrderHit struct {
	OrderID   string
	Email     string
	Status    gpubroker.OrderStatus
	CreatedAt time.Time
}

// SearchOrders finds orders by email (or part of one, in any case), order id, pod id, or a
// Stripe id of the order or of one of its extensions: Checkout Session, PaymentIntent or refund.
// Stripe's ids are case-sensitive base62 and are compared as typed; uuids in any case.
func SearchOrders(ctx context.Context, q Querier, term string) ([]OrderHit, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT o.id::text, o.email, o.status, o.created_at FROM orders o
		WHERE o.id = $1::uuid OR o.stripe_session_id = $2 OR o.payment_intent_id = $2 OR o.refund_id = $2
		   OR o.id IN (SELECT order_id FROM pods WHERE id = $1::uuid)
		   OR o.id IN (SELECT order_id FROM extensions WHERE id = $1::uuid OR stripe_session_id = $2 OR payment_intent_id = $2)
		   OR o.id IN (SELECT y.order_id FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE r.stripe_refund_id = $2)
		   OR o.email LIKE '%' || $3 || '%'
		ORDER BY o.created_at DESC LIMIT 100`, nullUUID(term), term, likeEscape(strings.ToLower(term)))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OrderHit])
}

// nullUUID is s as a uuid parameter, or NULL when s is not one (so it matches nothing).
func nullUUID(s string) *string {
	if u := uuidOrEmpty(s); u != "" {
		u = strings.ToLower(u)
		return &u
	}
	return nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// StoryEntry is one thing that happened to an order, from one of its sources.
type StoryEntry struct {
	At     time.Time
	Source string // webhook, audit, job, email
	What   string
	Actor  string // who or what did it (an audit event's actor, a job's kind)
	Detail string
	Error  bool
}

// OrderStory is an order with everything that happened to it, in time order.
type OrderStory struct {
	Order      *gpubroker.Order
	Pod        *gpubroker.Pod
	Extensions []Extension
	Drift      string // what the reconciler's last check found Stripe disagreeing on ("" when fine)
	Entries    []StoryEntry
}

// GetOrderStory collects an order's webhook events, audit trail (ops' River UI actions on its
// jobs included), jobs (with their errors) and emails (with their delivery), oldest first. The
// order's extensions count as the order: their webhook events are stored under the extension's
// id (their client_reference_id) and their own session and PaymentIntent.
func GetOrderStory(ctx context.Context, q Querier, orderID string) (*OrderStory, error) {
	o, err := GetOrder(ctx, q, orderID)
	if err != nil {
		return nil, err
	}
	pod, err := GetOrderPod(ctx, q, o.ID)
	if err != nil {
		return nil, err
	}
	st := &OrderStory{Order: o, Pod: pod}
	add := func(e StoryEntry) { st.Entries = append(st.Entries, e) }
	if err := q.QueryRow(ctx, `SELECT COALESCE(drift, '') FROM orders WHERE id = $1`, o.ID).Scan(&st.Drift); err != nil {
		return nil, err
	}

	rows, err := q.Query(ctx, `SELECT `+extensionCols+` FROM extensions WHERE order_id = $1 ORDER BY created_at, id`, o.ID)
	if err != nil {
		return nil, err
	}
	if st.Extensions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Extension, error) {
		x, err := scanExtension(row)
		return *x, err
	}); err != nil {
		return nil, err
	}
	// What Stripe's events name the order by: its id or an extension's (client_reference_id),
	// and the Checkout Sessions and PaymentIntents of both (data.object.id).
	refs, objects := []string{o.ID}, []string{}
	for _, id := range []*string{o.StripeSessionID, o.PaymentIntentID} {
		if id != nil {
			objects = append(objects, *id)
		}
	}
	for _, x := range st.Extensions {
		refs = append(refs, x.ID)
		for _, id := range []*string{x.StripeSessionID, x.PaymentIntentID} {
			if id != nil {
				objects = append(objects, *id)
			}
		}
	}
	const events = `SELECT id FROM stripe_events WHERE order_id = ANY($1::uuid[]) OR object_id = ANY($2::text[])`

	rows, err = q.Query(ctx, `SELECT received_at, type, id, processed_at IS NOT NULL FROM stripe_events
		WHERE id IN (`+events+`) ORDER BY received_at`, refs, objects)
	if err != nil {
		return nil, err
	}
	var at time.Time
	var typ, id string
	var processed bool
	if _, err := pgx.ForEachRow(rows, []any{&at, &typ, &id, &processed}, func() error {
		state := "processed"
		if !processed {
			state = "not processed yet"
		}
		add(StoryEntry{At: at, Source: "webhook", What: typ, Actor: "stripe", Detail: id + " · " + state})
		return nil
	}); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `SELECT created_at, kind, id, state::text, attempt, max_attempts, COALESCE(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE args->>'order_id' = $3 OR args->>'pod_id' = $4
		   OR (kind = 'stripe_event' AND args->>'event_id' IN (`+events+`))
		ORDER BY id`, refs, objects, o.ID, pod.ID)
	if err != nil {
		return nil, err
	}
	var kind, state, lastErr string
	var jobID int64
	var jobIDs []int64
	var attempt, maxAttempts int
	if _, err := pgx.ForEachRow(rows, []any{&at, &kind, &jobID, &state, &attempt, &maxAttempts, &lastErr}, func() error {
		jobIDs = append(jobIDs, jobID)
		d := fmt.Sprintf("job %d · %s · attempt %d of %d", jobID, state, attempt, maxAttempts)
		if lastErr != "" {
			d += " · last error: " + lastErr
		}
		add(StoryEntry{At: at, Source: "job", What: kind, Actor: "worker", Detail: d, Error: lastErr != "" || state == "discarded"})
		return nil
	}); err != nil {
		return nil, err
	}

	// The order's own trail, and ops' River UI actions (api.AuditAdmin) on any of its jobs.
	rows, err = q.Query(ctx, `SELECT created_at, action, detail FROM audit_events WHERE order_id = $1 OR pod_id = $2
		OR (action = 'ops.riverui_action' AND jsonb_typeof(detail->'job_ids') = 'array' AND EXISTS (
			SELECT 1 FROM jsonb_array_elements_text(detail->'job_ids') j WHERE j = ANY($3::text[])))
		ORDER BY id`, o.ID, pod.ID, int64Strings(jobIDs))
	if err != nil {
		return nil, err
	}
	var action string
	var detail []byte
	if _, err := pgx.ForEachRow(rows, []any{&at, &action, &detail}, func() error {
		var d map[string]any
		_ = json.Unmarshal(detail, &d)
		actor := "system"
		if a, ok := d["actor"].(string); ok {
			actor = a
		} else if strings.HasSuffix(action, "_requested") {
			actor = "customer"
		}
		add(StoryEntry{At: at, Source: "audit", What: action, Actor: actor, Detail: compact(d), Error: strings.HasSuffix(action, ".failed")})
		return nil
	}); err != nil {
		return nil, err
	}

	// Emails keyed <kind>:<order or pod id>[:<more>] (pod_ending:<pod>:<end>, the reminder), and
	// the unkeyed ones (sign-in links) sent to the order's address since it was made.
	rows, err = q.Query(ctx, `SELECT e.created_at, e.kind, e.status, COALESCE(e.error, ''), COALESCE(string_agg(DISTINCT f.kind, ', '), '')
		FROM emails e LEFT JOIN email_feedback f ON f.message_id = e.provider_message_id
		WHERE split_part(e.dedupe_key, ':', 2) IN ($1, $2) OR (e.to_email = $3 AND e.created_at >= $4 AND e.dedupe_key IS NULL)
		GROUP BY e.id ORDER BY e.id`, o.ID, pod.ID, o.Email, o.CreatedAt)
	if err != nil {
		return nil, err
	}
	var status, emailErr, feedback string
	if _, err := pgx.ForEachRow(rows, []any{&at, &kind, &status, &emailErr, &feedback}, func() error {
		d := status
		if emailErr != "" {
			d += " · " + emailErr
		}
		if feedback != "" {
			d += " · " + feedback
		}
		add(StoryEntry{At: at, Source: "email", What: kind, Actor: "mail", Detail: d, Error: status == "failed" || feedback != ""})
		return nil
	}); err != nil {
		return nil, err
	}
	sort.SliceStable(st.Entries, func(i, j int) bool { return st.Entries[i].At.Before(st.Entries[j].At) })
	return st, nil
}

// int64Strings is ids as decimal strings (a jsonb array's elements as text).
func int64Strings(ids []int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// compact renders an audit detail as "k=v, k=v" in key order.
func compact(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, ", ")
}
