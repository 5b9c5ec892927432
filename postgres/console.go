package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"gpubroker"
)

// The ops read model's queries: package opsview runs them on an interval and serves /metrics,
// /ops/funnel and the console from what they return. They return numbers and rows; naming and
// presenting them is opsview's and the api's.

// FunnelCounts counts the orders created since a time that reached each step of the journey.
// Each step requires the one before, so the counts never grow down the funnel: a returning
// customer's account is active, but the new order counts as activated only once it is
// authorized too.
type FunnelCounts struct {
	CheckoutsStarted int64 // every order (a checkout begun, or a free trial claimed)
	Authorized       int64 // its card hold authorized, or a free trial (nothing to authorize)
	Activated        int64 // and the order's account is active (the activation email was used)
	Deployed         int64 // and Deploy was pressed on its pod
	Captured         int64 // and the pod went on past capture (the money taken; a free trial's too)
	Running          int64 // and the pod ran
	// The payment success rate's terms: orders that are not free trials, and those of them
	// whose card hold was authorized.
	PaidCheckouts  int64
	PaidAuthorized int64
}

// CountFunnel counts the funnel of the orders created at or after since (the zero time: all).
// It reads funnel_hours (migrations 018 and 028): whole UTC hours from the table, the hours
// changed since the last fold and the window's partial first hour from the orders themselves,
// all in one statement, so the counts are exact. It first folds changed hours into funnel_hours (one
// caller at a time; the others only read), in the same transaction. A Querier that cannot
// begin a transaction only reads.
func CountFunnel(ctx context.Context, q Querier, since time.Time) (FunnelCounts, error) {
	b, ok := q.(Beginner)
	if !ok {
		return readFunnel(ctx, q, since)
	}
	tx, err := beginFold(ctx, b)
	if err != nil {
		return FunnelCounts{}, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	f, err := readFunnel(ctx, tx, since)
	if err != nil {
		return f, err
	}
	return f, tx.Commit(ctx)
}

// FoldFunnel is CountFunnel's fold alone, in a transaction of its own: up to FunnelFoldHours
// dirty hours recounted into funnel_hours (none when another caller is folding). make scale
// calls it until nothing is dirty after seeding, as the collector would over its first
// collections.
func FoldFunnel(ctx context.Context, b Beginner) error {
	tx, err := beginFold(ctx, b)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	return tx.Commit(ctx)
}

// beginFold begins a transaction and folds in it.
func beginFold(ctx context.Context, b Beginner) (pgx.Tx, error) {
	tx, err := b.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := foldFunnel(ctx, tx); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

func readFunnel(ctx context.Context, q Querier, since time.Time) (FunnelCounts, error) {
	since = since.UTC()
	firstHour := since.Truncate(time.Hour) // a UTC hour (the zero time is one)
	if firstHour.Before(since) {
		firstHour = firstHour.Add(time.Hour)
	}
	var f FunnelCounts
	err := q.QueryRow(ctx, `WITH dirty AS (SELECT DISTINCT hour FROM funnel_dirty WHERE hour >= ($2::timestamptz AT TIME ZONE 'UTC')),
		kept AS (SELECT `+funnelKeptSums+` FROM funnel_hours
			WHERE hour >= ($2::timestamptz AT TIME ZONE 'UTC') AND hour NOT IN (SELECT hour FROM dirty)),
		live AS (SELECT `+funnelSums+` FROM (
			SELECT `+funnelColumns+` FROM orders o `+funnelJoins+` WHERE o.created_at >= $1 AND o.created_at < $2
			UNION ALL
			SELECT x.* FROM dirty d CROSS JOIN LATERAL (SELECT `+funnelColumns+` FROM orders o `+funnelJoins+`
				WHERE `+funnelHour+` = d.hour) x) x)
		SELECT k.checkouts_started + l.checkouts_started, k.authorized + l.authorized, k.activated + l.activated,
		       k.deployed + l.deployed, k.captured + l.captured, k.running + l.running,
		       k.paid_checkouts + l.paid_checkouts, k.paid_authorized + l.paid_authorized
		FROM kept k, live l`, since, firstHour).
		Scan(&f.CheckoutsStarted, &f.Authorized, &f.Activated, &f.Deployed, &f.Captured, &f.Running, &f.PaidCheckouts, &f.PaidAuthorized)
	return f, err
}

// FunnelFoldHours is the most dirty hours one fold recounts (the most recent first), so a fold
// stays bounded even after a change that touched the whole history; the hours left are counted
// from the orders by the readers meanwhile and folded by the next calls. Each order costs two
// key lookups (funnelJoins). Per day (migration 018), a fold of today took 1,306 ms cold at
// make scale's SCALE=10 (about 13,700 orders a day); an hour there is about 570 orders.
var FunnelFoldHours = 16

// funnelHour is an order's UTC creation hour, as orders_created_hour_idx indexes it.
const funnelHour = `date_trunc('hour', o.created_at AT TIME ZONE 'UTC')`

// funnelColumns are one order's funnel steps (from orders o, funnelJoins), and its UTC
// creation hour. Migration 028's backfill repeats them.
const funnelColumns = funnelHour + ` AS hour,
	o.status <> 'free' AS paid,
	(o.authorized_at IS NOT NULL OR o.status = 'free') AS authorized,
	COALESCE(a.status = 'active', false) AS active,
	p.deploy_requested_at IS NOT NULL AS deployed,
	p.captured_at IS NOT NULL AS captured,
	p.started_at IS NOT NULL AS ran`

// funnelJoins are an order's account and pod, each looked up by its key (accounts' primary key,
// pods' unique order_id) for the order at hand: the LIMIT 1 (each is at most one row anyway)
// keeps the planner from turning them back into joins, which for a fold's or a reader's few
// thousand orders it would hash, reading every pod and account.
const funnelJoins = `LEFT JOIN LATERAL (SELECT a.status FROM accounts a WHERE a.id = o.account_id LIMIT 1) a ON true
	LEFT JOIN LATERAL (SELECT p.deploy_requested_at, p.captured_at, p.started_at FROM pods p WHERE p.order_id = o.id LIMIT 1) p ON true`

// funnelSums counts funnelColumns' rows into funnel_hours' columns: each step counts the orders
// that reached it and every step before.
const funnelSums = `count(*) AS checkouts_started,
	count(*) FILTER (WHERE authorized) AS authorized,
	count(*) FILTER (WHERE authorized AND active) AS activated,
	count(*) FILTER (WHERE authorized AND active AND deployed) AS deployed,
	count(*) FILTER (WHERE authorized AND active AND deployed AND captured) AS captured,
	count(*) FILTER (WHERE authorized AND active AND deployed AND captured AND ran) AS running,
	count(*) FILTER (WHERE paid) AS paid_checkouts,
	count(*) FILTER (WHERE paid AND authorized) AS paid_authorized`

const funnelKeptSums = `COALESCE(sum(checkouts_started), 0)::bigint AS checkouts_started,
	COALESCE(sum(authorized), 0)::bigint AS authorized, COALESCE(sum(activated), 0)::bigint AS activated,
	COALESCE(sum(deployed), 0)::bigint AS deployed, COALESCE(sum(captured), 0)::bigint AS captured,
	COALESCE(sum(running), 0)::bigint AS running, COALESCE(sum(paid_checkouts), 0)::bigint AS paid_checkouts,
	COALESCE(sum(paid_authorized), 0)::bigint AS paid_authorized`

// foldFunnel recounts up to FunnelFoldHours hours of funnel_dirty from the orders into
// funnel_hours and removes their markers, in one statement (one snapshot: a marker committed
// after it stays for the next fold). One folder at a time: the advisory lock is taken in a
// statement of its own, so the fold's snapshot is taken after the previous folder committed
// and never writes older counts over newer ones.
func foldFunnel(ctx context.Context, tx pgx.Tx) error {
	var folder bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext('ops_counts'), hashtext('funnel_hours'))`).Scan(&folder); err != nil {
		return err
	}
	if !folder {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH moved AS (DELETE FROM funnel_dirty WHERE hour IN
			(SELECT hour FROM (SELECT DISTINCT hour FROM funnel_dirty) d ORDER BY hour DESC LIMIT $1) RETURNING hour),
		hours AS (SELECT DISTINCT hour FROM moved),
		fresh AS (SELECT hour, `+funnelSums+` FROM (SELECT x.* FROM hours d CROSS JOIN LATERAL
			(SELECT `+funnelColumns+` FROM orders o `+funnelJoins+` WHERE `+funnelHour+` = d.hour) x) x GROUP BY hour),
		gone AS (DELETE FROM funnel_hours WHERE hour IN (SELECT hour FROM hours) AND hour NOT IN (SELECT hour FROM fresh))
		INSERT INTO funnel_hours SELECT * FROM fresh ON CONFLICT (hour) DO UPDATE SET
			checkouts_started = EXCLUDED.checkouts_started, authorized = EXCLUDED.authorized,
			activated = EXCLUDED.activated, deployed = EXCLUDED.deployed, captured = EXCLUDED.captured,
			running = EXCLUDED.running, paid_checkouts = EXCLUDED.paid_checkouts, paid_authorized = EXCLUDED.paid_authorized`, FunnelFoldHours)
	return err
}

// ProvisioningTimes is the Deploy-to-running time of the pods that started in a span.
type ProvisioningTimes struct {
	Pods     int64
	P50, P95 *float64 // seconds; nil when no pod started
}

// GetProvisioningTimes reads the Deploy-to-running percentiles of the pods started at or after
// since. For the zero time (all time) it reads the histogram of ops_counts' metric
// 'provisioning' (migration 018: whole seconds, floored) and interpolates as percentile_cont
// does between bucket midpoints, so P50 and P95 are within half a second of the exact values
// (Pods is exact); a window is read from the pods themselves (pods_started_idx), exactly.
func GetProvisioningTimes(ctx context.Context, q Querier, since time.Time) (ProvisioningTimes, error) {
	if since.IsZero() {
		sums, err := SumCounts(ctx, q, "provisioning")
		if err != nil {
			return ProvisioningTimes{}, err
		}
		return provisioningFromHistogram(sums), nil
	}
	var p ProvisioningTimes
	err := q.QueryRow(ctx, `SELECT count(*),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)),
		percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at))
		FROM pods WHERE started_at >= $1`, since).Scan(&p.Pods, &p.P50, &p.P95)
	return p, err
}

// provisioningFromHistogram computes ProvisioningTimes from whole-second buckets (key: the
// floored seconds; "": a pod without a Deploy time, counted in Pods but not in the
// percentiles), each bucket's pods taken at its midpoint.
func provisioningFromHistogram(sums map[string]int64) ProvisioningTimes {
	type bucket struct {
		sec float64
		n   int64
	}
	var p ProvisioningTimes
	var bs []bucket
	var n int64
	for k, c := range sums {
		p.Pods += c
		if s, err := strconv.ParseInt(k, 10, 64); err == nil && c > 0 {
			bs = append(bs, bucket{float64(s) + 0.5, c})
			n += c
		}
	}
	if n == 0 {
		return p
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].sec < bs[j].sec })
	at := func(i int64) float64 { // the value of the i-th (0-based) pod in order
		for _, b := range bs {
			if i < b.n {
				return b.sec
			}
			i -= b.n
		}
		return bs[len(bs)-1].sec
	}
	pct := func(f float64) *float64 {
		r := f * float64(n-1)
		lo := int64(r)
		v := at(lo)
		if frac := r - float64(lo); frac > 0 {
			v += frac * (at(lo+1) - v)
		}
		return &v
	}
	p.P50, p.P95 = pct(0.5), pct(0.95)
	return p
}

// ProvisioningDay is the Deploy-to-running time of the pods that started on one day.
type ProvisioningDay struct {
	Day      time.Time
	Pods     int64
	P50, P95 float64 // seconds
}

// ProvisioningByDay is GetProvisioningTimes per day (UTC) of the pods started at or after
// since, oldest first. The window's first day, cut at since, is read from the pods themselves
// (pods_started_idx: a day at most), exactly; every later day from its whole-second histogram
// (ops_counts' metric 'provisioning_day', migration 025), within half a second as the all-time
// percentiles are. A month of pods sorted for percentiles on every collection took 117 ms at
// SCALE=1 and grows with the business.
func ProvisioningByDay(ctx context.Context, q Querier, since time.Time) ([]ProvisioningDay, error) {
	since = since.UTC()
	next := since.Truncate(24 * time.Hour).Add(24 * time.Hour)
	var out []ProvisioningDay
	var first ProvisioningTimes
	if err := q.QueryRow(ctx, `SELECT count(*),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)),
		percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at))
		FROM pods WHERE started_at >= $1 AND started_at < $2`, since, next).Scan(&first.Pods, &first.P50, &first.P95); err != nil {
		return nil, err
	}
	if first.Pods > 0 {
		out = append(out, provisioningDay(since.Truncate(24*time.Hour), first))
	}
	sums, err := sumCounts(ctx, q, "provisioning_day", next.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	days := map[string]map[string]int64{}
	for k, n := range sums {
		day, secs, _ := strings.Cut(k, "|")
		if days[day] == nil {
			days[day] = map[string]int64{}
		}
		days[day][secs] += n
	}
	for _, day := range slices.Sorted(maps.Keys(days)) {
		t, err := time.Parse(time.DateOnly, day)
		if err != nil {
			return nil, fmt.Errorf("provisioning_day key %q: %w", day, err)
		}
		if p := provisioningFromHistogram(days[day]); p.Pods > 0 {
			out = append(out, provisioningDay(t, p))
		}
	}
	return out, nil
}

// provisioningDay is one day's row: a day whose pods all started without a Deploy time has no
// percentiles, and shows zeros.
func provisioningDay(day time.Time, p ProvisioningTimes) ProvisioningDay {
	d := ProvisioningDay{Day: day, Pods: p.Pods}
	if p.P50 != nil {
		d.P50, d.P95 = *p.P50, *p.P95
	}
	return d
}

// PodCount is how many pods are in a status at a provider ("" before one is chosen).
type PodCount struct {
	Status   gpubroker.PodStatus
	Provider string
	Count    int64
}

// SumCounts sums the delta rows of one of ops_counts' metrics ("audit", "orders", "pods",
// "provisioning"; see migrations 017, 018 and 025) by key, leaving out keys that sum to zero. It
// also folds each key that has more than one row into one, so the table stays as small as its
// keys: one collector at a time (an advisory lock; the others only read), and in the same
// statement, whose sum is read from the snapshot before the fold, so nothing is counted twice or
// lost. Rows appended meanwhile stay for the next fold.
func SumCounts(ctx context.Context, q Querier, metric string) (map[string]int64, error) {
	return sumCounts(ctx, q, metric, "")
}

// sumCounts is SumCounts over the keys at or after from (ops_counts_metric_key_idx), folding
// only those.
func sumCounts(ctx context.Context, q Querier, metric, from string) (map[string]int64, error) {
	// Each key's rows are found by ops_counts_metric_key_idx, whatever the table's statistics
	// say: a join of the range with its own duplicates, planned on stale statistics (right
	// after migration 025's backfill), compared 87,725 keys with each other for minutes.
	rows, err := q.Query(ctx, `WITH folder AS (SELECT pg_try_advisory_xact_lock(hashtext('ops_counts'), hashtext($1)) AS ok),
		moved AS (DELETE FROM ops_counts c WHERE c.metric = $1 AND c.key >= $2 AND (SELECT ok FROM folder)
			AND EXISTS (SELECT 1 FROM ops_counts d WHERE d.metric = $1 AND d.key = c.key AND d.id <> c.id)
			RETURNING c.key, c.n),
		folded AS (INSERT INTO ops_counts (metric, key, n) SELECT $1, key, sum(n) FROM moved GROUP BY key HAVING sum(n) <> 0)
		SELECT key, sum(n)::bigint FROM ops_counts WHERE metric = $1 AND key >= $2 GROUP BY key HAVING sum(n) <> 0`, metric, from)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var key string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error { out[key] = n; return nil })
	return out, err
}

// CountPods counts the pods by status and provider.
func CountPods(ctx context.Context, q Querier) ([]PodCount, error) {
	sums, err := SumCounts(ctx, q, "pods")
	if err != nil {
		return nil, err
	}
	out := make([]PodCount, 0, len(sums))
	for key, n := range sums {
		status, provider, _ := strings.Cut(key, "|")
		out = append(out, PodCount{Status: gpubroker.PodStatus(status), Provider: provider, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Status != out[j].Status {
			return out[i].Status < out[j].Status
		}
		return out[i].Provider < out[j].Provider
	})
	return out, nil
}

// CountOrders counts the orders by status.
func CountOrders(ctx context.Context, q Querier) (map[gpubroker.OrderStatus]int64, error) {
	sums, err := SumCounts(ctx, q, "orders")
	if err != nil {
		return nil, err
	}
	out := make(map[gpubroker.OrderStatus]int64, len(sums))
	for k, n := range sums {
		out[gpubroker.OrderStatus(k)] = n
	}
	return out, nil
}

// JobCount is how many River jobs of a kind are in a state.
type JobCount struct {
	Kind, State string
	Count       int64
}

// JobsCompletedWindow is how far back CountJobs counts completed jobs (gpubroker_jobs' help
// text says it).
const JobsCompletedWindow = time.Hour

// CountJobs counts the River jobs by kind and state: every job still to run or running, and
// every discarded and cancelled one (the few River keeps: discarded until ops act, cancelled a
// month), exactly; completed ones only as those finished in the last JobsCompletedWindow
// (River keeps a week of them, which at size is millions of rows to count on every
// collection). Each kind River still holds a job of has a row (a completed count of 0 when
// nothing else), so its series stay. Every part reads an index: River's fetching index
// (state first), its (state, finalized_at) index, and its kind index stepped through one
// kind at a time.
func CountJobs(ctx context.Context, q Querier) ([]JobCount, error) {
	// The states as literals, so the planner estimates them from the column's statistics.
	var exact []string
	for _, st := range rivertype.JobStates() {
		if st != rivertype.JobStateCompleted {
			exact = append(exact, "'"+string(st)+"'")
		}
	}
	rows, err := q.Query(ctx, `WITH RECURSIVE kinds AS (
			SELECT min(kind) AS kind FROM river_job
			UNION ALL
			SELECT (SELECT min(kind) FROM river_job WHERE kind > k.kind) FROM kinds k WHERE k.kind IS NOT NULL),
		counts AS (
			SELECT kind, state::text AS state, count(*) AS n FROM river_job WHERE state IN (`+strings.Join(exact, ", ")+`) GROUP BY 1, 2
			UNION ALL
			SELECT kind, 'completed', count(*) FROM river_job WHERE state = 'completed' AND finalized_at > now() - $1::interval GROUP BY 1)
		SELECT kind, state, n FROM counts
		UNION ALL
		SELECT kind, 'completed', 0 FROM kinds WHERE kind IS NOT NULL AND kind NOT IN (SELECT kind FROM counts)
		ORDER BY 1, 2`, JobsCompletedWindow)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[JobCount])
}

// CountAuditActions counts the audit events by action, all time.
func CountAuditActions(ctx context.Context, q Querier) (map[string]int64, error) {
	return SumCounts(ctx, q, "audit")
}

// Tallies are the running totals ops watch besides the funnel, and the conditions that page.
type Tallies struct {
	Extensions             int64 // extensions paid
	EarlyStopRefunds       int64 // pods stopped early with their unused hours refunded
	EarlyStopRefundedCents int64
	DeadPods               int64 // pods that died under their customer (pod.died)
	HoldsLapsingSoon       int64 // undeployed card holds within 24 hours of their deadline
	CapturedWithoutPod     int64 // see capturedWithoutPod
	ProvisioningP95Hour    float64
	EmailsSent24h          int64
	EmailBounces24h        int64 // permanent bounces and complaints
	EmailsFailed7d         int64 // emails we gave up on (SES refused them for good, or the sandbox past their link's life)
	LastWebhookAt          *time.Time
	WebhooksWaiting        int64 // stored more than 5 minutes ago and not processed
}

// holdLapsing is an undeployed hold within $1 of its deadline.
const holdLapsing = `o.status = 'authorized' AND o.hold_expires_at < now() + $1::interval`

// capturedWithoutPod is a captured order whose pod is still deploying or provisioning 30
// minutes after the capture (not failed: then its refund is pending or made).
const capturedWithoutPod = `o.status = 'captured' AND p.status IN ('deploying', 'provisioning') AND p.captured_at < now() - interval '30 minutes'`

// GetTallies reads the Tallies.
func GetTallies(ctx context.Context, q Querier) (Tallies, error) {
	var t Tallies
	err := q.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM extensions WHERE status = 'paid'),
		(SELECT count(DISTINCT pod_id) FROM refunds WHERE reason = 'early_stop' AND stripe_refund_id IS NOT NULL),
		(SELECT COALESCE(sum(amount_cents), 0) FROM refunds WHERE reason = 'early_stop' AND stripe_refund_id IS NOT NULL),
		(SELECT count(*) FROM audit_events WHERE action = 'pod.died'),
		(SELECT count(*) FROM orders o WHERE `+holdLapsing+`),
		(SELECT count(*) FROM pods p JOIN orders o ON o.id = p.order_id WHERE `+capturedWithoutPod+`),
		(SELECT COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - deploy_requested_at)), 0) FROM pods WHERE started_at > now() - interval '1 hour'),
		(SELECT count(*) FROM emails WHERE status = 'sent' AND sent_at > now() - interval '24 hours'),
		(SELECT count(*) FROM email_feedback WHERE created_at > now() - interval '24 hours' AND (kind = 'complaint' OR bounce_type = 'Permanent')),
		(SELECT count(*) FROM emails WHERE status = 'failed' AND created_at > now() - interval '7 days'),
		COALESCE((SELECT max(received_at) FROM stripe_events WHERE payload IS NOT NULL), (SELECT max(received_at) FROM stripe_events)),
		(SELECT count(*) FROM stripe_events WHERE processed_at IS NULL AND received_at < now() - interval '5 minutes')`, 24*time.Hour).
		Scan(&t.Extensions, &t.EarlyStopRefunds, &t.EarlyStopRefundedCents, &t.DeadPods, &t.HoldsLapsingSoon, &t.CapturedWithoutPod,
			&t.ProvisioningP95Hour, &t.EmailsSent24h, &t.EmailBounces24h, &t.EmailsFailed7d, &t.LastWebhookAt, &t.WebhooksWaiting)
	return t, err
}

// RepairRow is one repair the reconciler made, with the order it concerns when it knows one.
type RepairRow struct {
	At      time.Time
	Action  string
	OrderID string // "" for an instance no pod of ours owns
	Detail  map[string]any
}

// RefundFailure is a refund attempt Stripe refused.
type RefundFailure struct {
	At                   time.Time
	OrderID              string // "" when the audit names neither order nor pod
	Attempt, MaxAttempts string // "?" when the audit did not say
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

// GetReconcileSummary counts the orders the reconciler last found in drift, and takes the
// repairs it audited (reconcile.orphan_instance, reconcile.overdue_pod, reconcile.refund_queued,
// reconcile.provision_requeued) from audit, the audit counts CountAuditActions read (the
// collector reads them once for both).
func GetReconcileSummary(ctx context.Context, q Querier, audit map[string]int64) (ReconcileSummary, error) {
	r := ReconcileSummary{
		OrphanInstancesEnded: audit[string(gpubroker.ActionReconcileOrphanInstance)],
		RefundsQueued:        audit[string(gpubroker.ActionReconcileRefundQueued)],
		ProvisionsRequeued:   audit[string(gpubroker.ActionReconcileProvisionRequeued)],
		OverduePodsEnded:     audit[string(gpubroker.ActionReconcileOverduePod)],
	}
	var err error
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

// ReconcileRepairs lists the reconciler's latest repairs, newest first; a repair that names
// only the pod gets the pod's order.
func ReconcileRepairs(ctx context.Context, q Querier, limit int) ([]RepairRow, error) {
	rows, err := q.Query(ctx, `SELECT a.created_at, a.action, COALESCE(a.order_id, p.order_id)::text, a.detail
		FROM audit_events a LEFT JOIN pods p ON p.id = a.pod_id
		WHERE a.action IN ('reconcile.orphan_instance', 'reconcile.overdue_pod', 'reconcile.refund_queued', 'reconcile.provision_requeued')
		ORDER BY a.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (RepairRow, error) {
		var r RepairRow
		var orderID *string
		err := row.Scan(&r.At, &r.Action, &orderID, &r.Detail)
		r.OrderID = deref(orderID)
		return r, err
	})
}

// RefundRow is one refund planned or made, with its reason.
type RefundRow struct {
	At             time.Time
	OrderID        string
	Reason         string
	AmountCents    int64
	StripeRefundID string     // empty until Stripe made it (or when it was found made by hand)
	RefundedAt     *time.Time // nil: planned, not made yet
}

// Refunds lists the refunds ledger, whatever the reason: a pod that could not start
// (not_started), an early stop, a dead pod, an extension paid after its pod stopped
// (late_extension); the ones planned since the given time, and every one not made yet (a
// customer is owed it). Newest first, up to limit.
func Refunds(ctx context.Context, q Querier, since time.Time, limit int) ([]RefundRow, error) {
	rows, err := q.Query(ctx, `SELECT r.created_at, y.order_id::text, r.reason, r.amount_cents, COALESCE(r.stripe_refund_id, ''), r.refunded_at
		FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE r.created_at >= $1 OR r.refunded_at IS NULL
		ORDER BY r.created_at DESC, r.id DESC LIMIT $2`, since, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RefundRow])
}

// RefundFailures lists the refund attempts Stripe refused since the given time, newest first
// (jobs/refund.go and jobs/unused_hours_refund.go audit each one; the latter knows only the pod).
func RefundFailures(ctx context.Context, q Querier, since time.Time, limit int) ([]RefundFailure, error) {
	rows, err := q.Query(ctx, `SELECT a.created_at, COALESCE(COALESCE(a.order_id, p.order_id)::text, ''), COALESCE(a.detail->>'attempt', '?'),
		COALESCE(a.detail->>'max_attempts', '?'), COALESCE(a.detail->>'error', '')
		FROM audit_events a LEFT JOIN pods p ON p.id = a.pod_id
		WHERE a.action = 'refund.failed' AND a.created_at > $1
		ORDER BY a.id DESC LIMIT $2`, since, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RefundFailure])
}

// CapturedWithoutPod lists the captured orders whose pod is not running 30 minutes after the
// capture (Tallies.CapturedWithoutPod counts them), oldest capture first.
func CapturedWithoutPod(ctx context.Context, q Querier, limit int) ([]WaitingPod, error) {
	rows, err := q.Query(ctx, `SELECT o.id::text, o.email, p.status, p.captured_at FROM pods p JOIN orders o ON o.id = p.order_id
		WHERE `+capturedWithoutPod+` ORDER BY p.captured_at LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[WaitingPod])
}

// HoldRow is an undeployed hold close to its deadline.
type HoldRow struct {
	OrderID   string
	Email     string
	ExpiresAt time.Time
}

// LapsingHolds lists the undeployed holds within the given time of their deadline, soonest
// first.
func LapsingHolds(ctx context.Context, q Querier, within time.Duration, limit int) ([]HoldRow, error) {
	rows, err := q.Query(ctx, `SELECT o.id::text, o.email, o.hold_expires_at FROM orders o
		WHERE `+holdLapsing+` ORDER BY o.hold_expires_at LIMIT $2`, within, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[HoldRow])
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
// Stripe's ids are case-sensitive base62 and are compared as typed; uuids in any case. Each
// way is its own indexed branch (a part of an email on orders_email_trgm_idx).
func SearchOrders(ctx context.Context, q Querier, term string) ([]OrderHit, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return nil, nil
	}
	// A whole address is looked up as one (orders_email_lower_idx, any case); anything else as
	// part of an address (orders_email_trgm_idx). A whole address searched as a part read the
	// posting lists of trigrams every address has ("@ex", "com"): 204 ms at SCALE=10.
	byEmail, email := `SELECT id FROM orders WHERE email LIKE '%' || $3 || '%'`, likeEscape(strings.ToLower(term))
	if gpubroker.ValidEmail(term) {
		byEmail, email = `SELECT id FROM orders WHERE lower(email) = $3`, strings.ToLower(term)
	}
	rows, err := q.Query(ctx, `SELECT o.id::text, o.email, o.status, o.created_at FROM orders o
		WHERE o.id IN (SELECT id FROM orders WHERE id = $1::uuid
		   UNION SELECT id FROM orders WHERE stripe_session_id = $2
		   UNION SELECT id FROM orders WHERE payment_intent_id = $2
		   UNION SELECT id FROM orders WHERE refund_id = $2
		   UNION SELECT order_id FROM pods WHERE id = $1::uuid
		   UNION SELECT order_id FROM extensions WHERE id = $1::uuid OR stripe_session_id = $2 OR payment_intent_id = $2
		   UNION SELECT y.order_id FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE r.stripe_refund_id = $2
		   UNION `+byEmail+`)
		ORDER BY o.created_at DESC LIMIT 100`, nullUUID(term), term, email)
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

// StoryEntry is one thing that happened to an order, from one of its sources, with the
// source's particulars (how the console words them is the api's).
type StoryEntry struct {
	At     time.Time
	Source string // webhook, audit, job, email
	What   string // the event's type, the audit action, the job's kind, the email's kind
	Actor  string // who or what did it (an audit event's actor, a job's kind)
	Error  bool

	EventID   string // webhook: Stripe's event id
	Processed bool   // webhook: its job ran

	JobID                int64 // job
	State                string
	Attempt, MaxAttempts int
	LastError            string

	Audit map[string]any // audit: the event's detail

	EmailStatus, EmailError string // email: its delivery
	Feedback                string // email: bounce or complaint kinds received, comma-separated
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
		add(StoryEntry{At: at, Source: "webhook", What: typ, Actor: "stripe", EventID: id, Processed: processed})
		return nil
	}); err != nil {
		return nil, err
	}

	rows, err = q.Query(ctx, `SELECT created_at, kind, id, state::text, attempt, max_attempts, COALESCE(errors[array_length(errors, 1)]->>'error', '')
		FROM river_job WHERE args @> jsonb_build_object('order_id', $3::text) OR args @> jsonb_build_object('pod_id', $4::text)
		   OR args @> ANY (ARRAY(SELECT jsonb_build_object('event_id', id) FROM (`+events+`) e))
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
		add(StoryEntry{At: at, Source: "job", What: kind, Actor: "worker", JobID: jobID, State: state, Attempt: attempt, MaxAttempts: maxAttempts,
			LastError: lastErr, Error: lastErr != "" || state == "discarded"})
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
		add(StoryEntry{At: at, Source: "audit", What: action, Actor: actor, Audit: d, Error: strings.HasSuffix(action, ".failed")})
		return nil
	}); err != nil {
		return nil, err
	}

	// Emails keyed <kind>:<order or pod id>[:<more>] (pod_ending:<pod>:<end>, the reminder), and
	// the unkeyed ones (sign-in links) sent to the order's address since it was made.
	rows, err = q.Query(ctx, `SELECT e.created_at, e.kind, e.status, COALESCE(e.error, ''), COALESCE(string_agg(DISTINCT f.kind, ', '), '')
		FROM emails e LEFT JOIN email_feedback f ON f.message_id = e.provider_message_id
		WHERE (e.dedupe_key IS NOT NULL AND split_part(e.dedupe_key, ':', 2) IN ($1, $2)) OR (e.to_email = $3 AND e.created_at >= $4 AND e.dedupe_key IS NULL)
		GROUP BY e.id ORDER BY e.id`, o.ID, pod.ID, o.Email, o.CreatedAt)
	if err != nil {
		return nil, err
	}
	var status, emailErr, feedback string
	if _, err := pgx.ForEachRow(rows, []any{&at, &kind, &status, &emailErr, &feedback}, func() error {
		add(StoryEntry{At: at, Source: "email", What: kind, Actor: "mail", EmailStatus: status, EmailError: emailErr, Feedback: feedback,
			Error: status == "failed" || feedback != ""})
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
