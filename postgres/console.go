package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
	At      time.Time
	OrderID string
	Reason  string
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
	// Full refunds (a pod that never started) and partial ones (early stops, dead pods).
	rows, err = q.Query(ctx, `SELECT created_at, order_id::text,
		CASE action WHEN 'order.refunded' THEN COALESCE(detail->>'reason', '')
		ELSE replace(replace(action, 'pod.', ''), '_refunded', '') || ': ' || COALESCE(detail->>'amount_cents', '?') || ' cents' END
		FROM audit_events WHERE action IN ('order.refunded', 'pod.early_stop_refunded', 'pod.pod_died_refunded') AND created_at >= $1
		ORDER BY created_at DESC LIMIT 50`, since)
	if err != nil {
		return nil, err
	}
	if s.Refunds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RefundRow]); err != nil {
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

// SearchOrders finds orders by email (or part of one), order id, Checkout Session id,
// PaymentIntent id or pod id.
func SearchOrders(ctx context.Context, q Querier, term string) ([]OrderHit, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT DISTINCT o.id::text, o.email, o.status, o.created_at FROM orders o LEFT JOIN pods p ON p.order_id = o.id
		WHERE o.id::text = $1 OR p.id::text = $1 OR o.stripe_session_id = $1 OR o.payment_intent_id = $1
		   OR o.email ILIKE '%' || $2 || '%'
		ORDER BY o.created_at DESC LIMIT 100`, strings.ToLower(term), likeEscape(strings.ToLower(term)))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OrderHit])
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
	Order   *gpubroker.Order
	Pod     *gpubroker.Pod
	Entries []StoryEntry
}

// GetOrderStory collects an order's webhook events, audit trail, jobs (with their errors)
// and emails (with their delivery), oldest first.
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

	rows, err := q.Query(ctx, `SELECT received_at, type, id, processed_at IS NOT NULL FROM stripe_events
		WHERE order_id = $1 OR object_id = $2 OR object_id = $3 ORDER BY received_at`, o.ID, deref(o.StripeSessionID), deref(o.PaymentIntentID))
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

	rows, err = q.Query(ctx, `SELECT created_at, action, detail FROM audit_events WHERE order_id = $1 OR pod_id = $2 ORDER BY id`, o.ID, pod.ID)
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

	rows, err = q.Query(ctx, `SELECT created_at, kind, id, state::text, attempt, max_attempts, COALESCE(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE args->>'order_id' = $1 OR args->>'pod_id' = $2
		   OR (kind = 'stripe_event' AND args->>'event_id' IN (SELECT id FROM stripe_events WHERE order_id::text = $1 OR object_id = $3 OR object_id = $4))
		ORDER BY id`, o.ID, pod.ID, deref(o.StripeSessionID), deref(o.PaymentIntentID))
	if err != nil {
		return nil, err
	}
	var kind, state, lastErr string
	var jobID int64
	var attempt, maxAttempts int
	if _, err := pgx.ForEachRow(rows, []any{&at, &kind, &jobID, &state, &attempt, &maxAttempts, &lastErr}, func() error {
		d := fmt.Sprintf("job %d · %s · attempt %d of %d", jobID, state, attempt, maxAttempts)
		if lastErr != "" {
			d += " · last error: " + lastErr
		}
		add(StoryEntry{At: at, Source: "job", What: kind, Actor: "worker", Detail: d, Error: lastErr != "" || state == "discarded"})
		return nil
	}); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `SELECT e.created_at, e.kind, e.status, COALESCE(e.error, ''), COALESCE(string_agg(DISTINCT f.kind, ', '), '')
		FROM emails e LEFT JOIN email_feedback f ON f.message_id = e.provider_message_id
		WHERE e.dedupe_key LIKE '%:' || $1 OR e.dedupe_key LIKE '%:' || $2 OR (e.to_email = $3 AND e.created_at >= $4 AND e.dedupe_key IS NULL)
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
