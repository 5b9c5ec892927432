package scale

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Volumes are the row counts of one seeded database: Base is about a year of a busy service
// (issue 24), and a run seeds Scale times it.
type Volumes struct {
	Accounts, Orders, Events, Audit, Emails, Sessions, Tokens, Jobs, Running int
}

// Base is one year of a busy service. Payments (about 300k) follow from the orders' statuses.
var Base = Volumes{
	Accounts: 100_000, Orders: 500_000, Events: 1_500_000, Audit: 3_000_000, Emails: 1_000_000,
	Sessions: 300_000, Tokens: 300_000, Jobs: 200_000, Running: 1_000,
}

// Times is Base multiplied by f (at least one of each).
func (v Volumes) Times(f float64) Volumes {
	m := func(n int) int { return max(1, int(float64(n)*f)) }
	return Volumes{m(v.Accounts), m(v.Orders), m(v.Events), m(v.Audit), m(v.Emails), m(v.Sessions), m(v.Tokens), m(v.Jobs), m(v.Running)}
}

// bytesPerOrder is what the seeded database takes per order with its events, audit, emails and
// jobs: 1.9 GB for 500k orders measured at SCALE=1 (3.8 KB), with room for migration 016's
// indexes; walBytes is the WAL the server may keep between checkpoints (max_wal_size).
const (
	bytesPerOrder = 6 << 10
	walBytes      = 2 << 30
)

// DiskNeeded estimates the bytes a seeded cluster of v needs.
func DiskNeeded(v Volumes) uint64 { return uint64(v.Orders)*bytesPerOrder + walBytes + 256<<20 }

// SessionSecret is the session cookie of seeded account n (1-based): the scale run signs in
// as it.
func SessionSecret(n int) string { return fmt.Sprintf("scale-session-%d", n) }

// seedStep is one set-based statement of the seed.
type seedStep struct {
	name, sql string
}

// seedSteps are the seed's statements; %[1]d… are Volumes' counts (accounts, orders, events,
// audit, emails, sessions, tokens, jobs, running). Every id is md5 of a tag and a number, so
// the tables join without lookups, and the newest orders have the highest numbers: order i was
// created (1 - i/orders) of a year ago. Payloads are small; shapes follow what the code writes.
var seedSteps = []seedStep{
	{"accounts", `INSERT INTO accounts (id, email, name, status, created_at, activated_at)
		SELECT md5('a'||a)::uuid, 'user'||a||'@example.com', 'User '||a, CASE WHEN a %% 10 = 0 THEN 'pending' ELSE 'active' END,
		       now() - interval '365 days' * (1 - a::float8/%[1]d) - interval '1 hour',
		       CASE WHEN a %% 10 = 0 THEN NULL ELSE now() - interval '365 days' * (1 - a::float8/%[1]d) END
		FROM generate_series(1, %[1]d) a`},
	// Statuses by r, and by age: holds are released within 7 days, checkouts expire in a day;
	// the newest orders run (their pods are the running fleet).
	{"orders", `INSERT INTO orders (id, account_id, email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents,
			status, stripe_session_id, payment_intent_id, created_at, authorized_at, hold_expires_at, captured_at, released_at, refunded_at, expired_at, reconciled_at)
		SELECT md5('o'||i)::uuid, md5('a'||a)::uuid, 'user'||a||'@example.com', 'User '||a, CASE WHEN st = 'free' THEN 'free' ELSE 'pro' END,
		       CASE WHEN i %% 3 = 0 THEN 'developer' ELSE 'data-science' END, CASE WHEN i %% 2 = 0 THEN 'rtx4090' ELSE 'a10' END, 'us-east',
		       h, 69, 69 * h, st, CASE WHEN st <> 'free' THEN 'cs_'||md5('cs'||i) END,
		       CASE WHEN st IN ('authorized', 'captured', 'refunded', 'released') THEN 'pi_'||md5('pi'||i) END,
		       t, CASE WHEN st IN ('authorized', 'captured', 'refunded', 'released') THEN t + interval '1 minute' END,
		       CASE WHEN st IN ('authorized', 'captured', 'refunded', 'released') THEN t + interval '7 days' END,
		       CASE WHEN st IN ('captured', 'refunded') THEN t + interval '10 minutes' END,
		       CASE WHEN st = 'released' THEN t + interval '6 days' END,
		       CASE WHEN st = 'refunded' THEN t + interval '1 hour' END,
		       CASE WHEN st = 'expired' THEN t + interval '1 day' END,
		       -- Compared with Stripe as the reconciler does: within a day while the order is in its
		       -- 35-day window, never after it (so an old order keeps an old time), never yet in
		       -- its first hour.
		       CASE WHEN st IN ('authorized', 'captured', 'refunded', 'released') AND t < now() - interval '1 hour'
		            THEN GREATEST(t, LEAST(t + interval '35 days', now()) - random() * interval '1 day') END
		FROM (SELECT i, a, t, h,
		             CASE WHEN i > %[2]d - %[9]d THEN 'captured'
		                  WHEN r < 0.50 THEN 'captured' WHEN r < 0.58 THEN 'refunded' WHEN r < 0.70 THEN 'expired'
		                  WHEN r < 0.80 THEN 'released' WHEN r < 0.86 THEN 'free' WHEN r < 0.89 THEN 'declined'
		                  WHEN r < 0.93 THEN CASE WHEN t > now() - interval '7 days' THEN 'authorized' ELSE 'released' END
		                  ELSE CASE WHEN t > now() - interval '1 day' THEN 'checkout_pending' ELSE 'expired' END END AS st
		      FROM (SELECT i, 1 + (i::bigint * 7919) %% %[1]d AS a, now() - interval '365 days' * (1 - i::float8/%[2]d) AS t, 1 + i %% 8 AS h, random() AS r
		            FROM generate_series(1, %[2]d) i) g) o`},
	// A pod for every order that got one: authorized, captured, refunded, released and free.
	{"pods", `INSERT INTO pods (id, order_id, account_id, status, gpu, region, hours, template, provider, instance_id, offer_id, cost_cents_per_hour,
			created_at, deploy_requested_at, captured_at, launched_at, started_at, ends_at, terminated_at, error, sent_to, settled_at)
		SELECT md5('p'||o.id)::uuid, o.id, o.account_id, ps, o.gpu, o.region, o.hours, o.template,
		       CASE WHEN ps IN ('running', 'terminated', 'terminating') THEN pr END,
		       CASE WHEN ps IN ('running', 'terminated', 'terminating') THEN 'inst-'||n END,
		       CASE WHEN ps IN ('running', 'terminated', 'terminating') THEN 'offer-'||(n %% 6) END,
		       CASE WHEN ps IN ('running', 'terminated', 'terminating') THEN 40 END,
		       o.created_at, CASE WHEN ps <> 'configured' THEN o.created_at + interval '9 minutes' END,
		       o.captured_at, CASE WHEN ps IN ('running', 'terminated') THEN o.created_at + interval '11 minutes' END,
		       CASE WHEN ps IN ('running', 'terminated') THEN o.created_at + interval '10 minutes' + (60 + n %% 240) * interval '1 second' END,
		       CASE WHEN ps = 'running' THEN now() + interval '1 hour' + (n %% 7200) * interval '1 second'
		            WHEN ps = 'terminated' THEN o.created_at + interval '10 minutes' + o.hours * interval '1 hour' END,
		       CASE WHEN ps = 'terminated' THEN o.created_at + interval '10 minutes' + o.hours * interval '1 hour' END,
		       CASE WHEN ps = 'failed' THEN 'no capacity: refund made' END,
		       CASE WHEN ps IN ('running', 'terminated', 'terminating') THEN ARRAY[pr] ELSE '{}' END,
		       -- Settled as postgres.MoveOrder settles a pod that never started: its order refunded or released.
		       CASE WHEN ps NOT IN ('running', 'terminated') THEN COALESCE(o.refunded_at, o.released_at) END
		FROM (SELECT o.*, ('x'||substr(md5(o.id::text), 1, 8))::bit(32)::int & 2147483647 AS n,
		             CASE WHEN o.status = 'captured' AND o.created_at > now() - interval '10 minutes' - (%[9]d::float8/%[2]d) * interval '365 days' THEN 'running'
		                  WHEN o.status IN ('captured', 'free') THEN 'terminated'
		                  WHEN o.status = 'refunded' THEN 'failed'
		                  ELSE 'configured' END AS ps,
		             -- The running fleet is on a provider this run's broker does not have, so the
		             -- health pass reads it and asks nobody (issue 24.3 measures the lists).
		             CASE WHEN o.status = 'captured' AND o.created_at > now() - interval '10 minutes' - (%[9]d::float8/%[2]d) * interval '365 days' THEN 'seeded'
		                  WHEN o.created_at::time < '12:00' THEN 'runpod' ELSE 'lambda' END AS pr
		      FROM orders o WHERE o.status IN ('authorized', 'captured', 'refunded', 'released', 'free')) o`},
	{"payments", `INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours, captured_at)
		SELECT id, 'order', payment_intent_id, amount_cents, hours, captured_at FROM orders WHERE status IN ('captured', 'refunded')`},
	{"refunds", `INSERT INTO refunds (payment_id, pod_id, amount_cents, idempotency_key, stripe_refund_id, reason, created_at, refunded_at)
		SELECT y.id, p.id, y.amount_cents, 'refund-'||o.id, 're_'||md5('re'||o.id), 'not_started', o.refunded_at, o.refunded_at
		FROM orders o JOIN payments y ON y.order_id = o.id JOIN pods p ON p.order_id = o.id WHERE o.status = 'refunded'`},
	{"extensions", `INSERT INTO extensions (pod_id, order_id, hours, amount_cents, status, stripe_session_id, payment_intent_id, created_at, paid_at)
		SELECT p.id, p.order_id, 1, 69, 'paid', 'cs_x'||md5(p.id::text), 'pi_x'||md5(p.id::text), p.started_at + interval '30 minutes', p.started_at + interval '31 minutes'
		FROM pods p WHERE p.status = 'terminated' AND p.id::text < '1'`},
	// Three events per order (checkout.session.completed naming the order, two naming its
	// PaymentIntent), the rest spread over the orders; payloads dropped after 30 days.
	{"stripe_events", `INSERT INTO stripe_events (id, type, object_id, order_id, payload, received_at, processed_at)
		SELECT 'evt_'||md5('ev'||e), ty, CASE WHEN k = 0 THEN 'cs_'||md5('cs'||i) ELSE 'pi_'||md5('pi'||i) END,
		       CASE WHEN k = 0 THEN md5('o'||i)::uuid END,
		       CASE WHEN t > now() - interval '30 days' THEN jsonb_build_object('id', 'evt_'||md5('ev'||e), 'type', ty) END,
		       t, t + interval '200 milliseconds'
		FROM (SELECT e, k, i, now() - interval '365 days' * (1 - i::float8/%[2]d) + k * interval '2 minutes' AS t,
		             (ARRAY['checkout.session.completed', 'payment_intent.amount_capturable_updated', 'charge.captured'])[k + 1] AS ty
		      FROM (SELECT e, e %% 3 AS k, 1 + ((e - 1) / 3) %% %[2]d AS i FROM generate_series(1, %[3]d) e) g) g
		WHERE t < now()`},
	// Six audit events per order in its life's order, with the occasional failure and repair.
	{"audit_events", `INSERT INTO audit_events (account_id, order_id, pod_id, action, detail, created_at)
		SELECT md5('a'||(1 + (i::bigint * 7919) %% %[1]d))::uuid, md5('o'||i)::uuid, CASE WHEN k >= 3 THEN md5('p'||md5('o'||i)::uuid)::uuid END,
		       CASE WHEN e %% 997 = 0 THEN 'refund.failed' WHEN e %% 991 = 0 THEN 'pod.died' WHEN e %% 4999 = 0 THEN 'reconcile.overdue_pod'
		            WHEN e %% 9973 = 0 THEN 'ops.riverui_action'
		            ELSE (ARRAY['order.created', 'order.authorized', 'account.created', 'pod.deploy_requested', 'pod.running', 'pod.terminated'])[k + 1] END,
		       CASE WHEN e %% 997 = 0 THEN '{"attempt": "1", "max_attempts": "25", "error": "card_declined"}'::jsonb
		            WHEN e %% 9973 = 0 THEN jsonb_build_object('actor', 'admin:ops', 'job_ids', jsonb_build_array((e %% 1000)::text))
		            ELSE '{}'::jsonb END,
		       now() - interval '365 days' * (1 - i::float8/%[2]d) + k * interval '3 minutes'
		FROM (SELECT e, e %% 6 AS k, 1 + ((e - 1) / 6) %% %[2]d AS i FROM generate_series(1, %[4]d) e) g`},
	{"emails", `INSERT INTO emails (to_email, kind, subject, text_body, html_body, dedupe_key, status, provider, provider_message_id, error, attempts, created_at, sent_at)
		SELECT 'user'||(1 + (i::bigint * 7919) %% %[1]d)||'@example.com', kd, 'Subject', 'text', '<p>html</p>',
		       CASE WHEN kd = 'login' THEN NULL WHEN kd = 'activation' THEN 'activation:'||md5('o'||i)::uuid ELSE kd||':'||md5('p'||md5('o'||i)::uuid)::uuid END,
		       st, 'ses', 'msg-'||e, CASE WHEN st = 'failed' THEN 'MessageRejected' END, 1, t, CASE WHEN st = 'sent' THEN t + interval '2 seconds' END
		FROM (SELECT e, i, now() - interval '365 days' * (1 - i::float8/%[2]d) + interval '1 minute' AS t,
		             (ARRAY['activation', 'pod_ready', 'login', 'pod_terminated'])[1 + e %% 4] AS kd,
		             CASE WHEN e %% 101 = 0 THEN 'failed' WHEN e %% 211 = 0 THEN 'suppressed' ELSE 'sent' END AS st
		      FROM (SELECT e, 1 + ((e - 1) / 2) %% %[2]d AS i FROM generate_series(1, %[5]d) e) g) g`},
	{"email_feedback", `INSERT INTO email_feedback (feedback_id, email, kind, bounce_type, message_id, created_at)
		SELECT 'fb-'||id, to_email, CASE WHEN id %% 5 = 0 THEN 'complaint' ELSE 'bounce' END, 'Permanent', provider_message_id, sent_at + interval '1 minute'
		FROM emails WHERE id %% 150 = 0 AND sent_at IS NOT NULL`},
	// Sessions and tokens of the last 30 days (the retention job deletes older ones).
	{"sessions", `INSERT INTO sessions (hash, account_id, created_at, expires_at)
		SELECT sha256(convert_to('scale-session-'||s, 'UTF8')), md5('a'||(1 + (s - 1) %% %[1]d))::uuid, t, t + interval '30 days'
		FROM (SELECT s, now() - interval '29 days' * random() AS t FROM generate_series(1, %[6]d) s) g`},
	{"tokens", `INSERT INTO tokens (hash, account_id, purpose, created_at, expires_at, used_at)
		SELECT sha256(convert_to('scale-token-'||s, 'UTF8')), md5('a'||(1 + (s - 1) %% %[1]d))::uuid, CASE WHEN s %% 4 = 0 THEN 'activation' ELSE 'login' END,
		       t, t + interval '1 hour', CASE WHEN s %% 3 <> 0 THEN t + interval '5 minutes' END
		FROM (SELECT s, now() - interval '29 days' * random() AS t FROM generate_series(1, %[7]d) s) g`},
	// Finished jobs of the last 7 days (River's cleaner removes older ones), args as the code
	// writes them, for the newest orders.
	{"river_job", `INSERT INTO river_job (args, attempt, attempted_at, created_at, finalized_at, kind, max_attempts, queue, state, scheduled_at)
		SELECT CASE kd WHEN 'stripe_event' THEN jsonb_build_object('event_id', 'evt_'||md5('ev'||(3 * (i - 1) + 1)))
		               WHEN 'create_account' THEN jsonb_build_object('order_id', md5('o'||i)::uuid)
		               WHEN 'send_email' THEN jsonb_build_object('email_id', j)
		               WHEN 'terminate' THEN jsonb_build_object('pod_id', md5('p'||md5('o'||i)::uuid)::uuid, 'ends_at', t)
		               ELSE jsonb_build_object('pod_id', md5('p'||md5('o'||i)::uuid)::uuid) END,
		       1, t, t, t + interval '1 second', kd, 25,
		       CASE kd WHEN 'capture' THEN 'payments' WHEN 'send_email' THEN 'email' WHEN 'provision' THEN 'pods' WHEN 'terminate' THEN 'pods' ELSE 'default' END,
		       'completed', t
		FROM (SELECT j, i, kd, now() - interval '7 days' * random() AS t
		      FROM (SELECT j, greatest(1, %[2]d - (j - 1) / 6) AS i, (ARRAY['stripe_event', 'create_account', 'send_email', 'capture', 'provision', 'terminate'])[1 + j %% 6] AS kd
		            FROM generate_series(1, %[8]d) j) g) g`},
	{"offers", `INSERT INTO offers (provider, offer_id, gpu, region, cents_per_hour, available)
		SELECT 'runpod', 'offer-'||g, (ARRAY['rtx4090', 'a10', 'h100', 'a100', 'l40s', 'a6000'])[g + 1], 'us-east', 40, true FROM generate_series(0, 5) g
		ON CONFLICT DO NOTHING`},
}

// SeedTimes is how long each table took.
type SeedTimes []struct {
	Table string
	Took  time.Duration
}

// Seed fills a migrated, empty database with v, then vacuums and analyzes it (as autovacuum
// would have over the year).
func Seed(ctx context.Context, pool *pgxpool.Pool, v Volumes, logf func(string, ...any)) (SeedTimes, error) {
	var times SeedTimes
	for _, s := range seedSteps {
		start := time.Now()
		sql := strings.ReplaceAll(s.sql, "%%", "%")
		if strings.Contains(s.sql, "%[") {
			sql = fmt.Sprintf(s.sql, v.Accounts, v.Orders, v.Events, v.Audit, v.Emails, v.Sessions, v.Tokens, v.Jobs, v.Running)
		}
		tag, err := pool.Exec(ctx, sql)
		if err != nil {
			return times, fmt.Errorf("seeding %s: %w", s.name, err)
		}
		took := time.Since(start)
		times = append(times, struct {
			Table string
			Took  time.Duration
		}{s.name, took})
		logf("seeded %-15s %10d rows in %s", s.name, tag.RowsAffected(), took.Round(time.Millisecond))
	}
	start := time.Now()
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return times, err
	}
	logf("vacuumed and analyzed in %s", time.Since(start).Round(time.Millisecond))
	return times, nil
}
