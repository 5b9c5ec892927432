-- +goose NO TRANSACTION
-- Issue 24.2: every regular read of the ops collector and the order story on an index of its
-- own, so each stays under 100 ms at ten years of a busy service (make scale): the story's
-- webhook events (by order and by Stripe object), audit trail by pod, emails by the order or
-- pod their dedupe key names (<kind>:<id>[:…]) and their feedback, the tallies' windows (emails
-- sent in 24 h, feedback in 24 h, webhooks waiting, audit actions in a span), the console's
-- windows (orders and pods by time), the search (a part of an email: pg_trgm, a trusted
-- extension since PostgreSQL 13; a refund id), lapsing holds, pods waiting after capture, the running
-- fleet and refunds not made. Built CONCURRENTLY (hence no transaction), as 015: these tables
-- take writes on the request path while a deploy migrates. A build that fails leaves an
-- INVALID index: drop it and migrate again.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_email_trgm_idx ON orders USING gin (email gin_trgm_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_refund_idx ON orders (refund_id) WHERE refund_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_events_order_idx ON stripe_events (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_events_object_idx ON stripe_events (object_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_events_waiting_idx ON stripe_events (received_at) WHERE processed_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_pod_idx ON audit_events (pod_id) WHERE pod_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_action_idx ON audit_events (action, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS emails_sent_idx ON emails (sent_at) WHERE status = 'sent';
CREATE INDEX CONCURRENTLY IF NOT EXISTS emails_key_subject_idx ON emails ((split_part(dedupe_key, ':', 2))) WHERE dedupe_key IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS email_feedback_created_idx ON email_feedback (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS email_feedback_message_idx ON email_feedback (message_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_idx ON orders (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_hold_idx ON orders (hold_expires_at) WHERE status = 'authorized';
CREATE INDEX CONCURRENTLY IF NOT EXISTS pods_started_idx ON pods (started_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS pods_waiting_idx ON pods (captured_at) WHERE status IN ('deploying', 'provisioning');
CREATE INDEX CONCURRENTLY IF NOT EXISTS pods_running_idx ON pods (id) WHERE status = 'running';
CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_created_idx ON refunds (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_unmade_idx ON refunds (id) WHERE refunded_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS refunds_unmade_idx;
DROP INDEX CONCURRENTLY IF EXISTS refunds_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS pods_running_idx;
DROP INDEX CONCURRENTLY IF EXISTS pods_waiting_idx;
DROP INDEX CONCURRENTLY IF EXISTS pods_started_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders_hold_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS email_feedback_message_idx;
DROP INDEX CONCURRENTLY IF EXISTS email_feedback_created_idx;
DROP INDEX CONCURRENTLY IF EXISTS emails_key_subject_idx;
DROP INDEX CONCURRENTLY IF EXISTS emails_sent_idx;
DROP INDEX CONCURRENTLY IF EXISTS audit_events_action_idx;
DROP INDEX CONCURRENTLY IF EXISTS audit_events_pod_idx;
DROP INDEX CONCURRENTLY IF EXISTS stripe_events_waiting_idx;
DROP INDEX CONCURRENTLY IF EXISTS stripe_events_object_idx;
DROP INDEX CONCURRENTLY IF EXISTS stripe_events_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders_refund_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders_email_trgm_idx;
