-- +goose NO TRANSACTION
-- Issue 24.4, retention: the hourly retention job (postgres.Retention) deletes expired sessions,
-- ended rate-limit windows and tokens 30 days after they were used or expired, and drops Stripe
-- event payloads after 30 days while the event row stays for dedupe. Each scan has an index, so
-- a run over a big table reads only what it removes; the payload's partial index forgets the
-- rows already emptied. Built CONCURRENTLY (hence no transaction): these tables take writes on
-- the request path (the webhook, sign-in, rate limits) while a deploy migrates. A build that
-- fails leaves an INVALID index: drop it and migrate again.

-- +goose Up
ALTER TABLE stripe_events ALTER COLUMN payload DROP NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_expires_idx ON sessions (expires_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tokens_spent_idx ON tokens ((LEAST(used_at, expires_at)));
CREATE INDEX CONCURRENTLY IF NOT EXISTS rate_limits_window_idx ON rate_limits (window_start);
CREATE INDEX CONCURRENTLY IF NOT EXISTS stripe_events_payload_age_idx ON stripe_events (received_at) WHERE payload IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS stripe_events_payload_age_idx;
DROP INDEX CONCURRENTLY IF EXISTS rate_limits_window_idx;
DROP INDEX CONCURRENTLY IF EXISTS tokens_spent_idx;
DROP INDEX CONCURRENTLY IF EXISTS sessions_expires_idx;
-- A dropped payload comes back as JSON null: the column is NOT NULL again.
UPDATE stripe_events SET payload = 'null' WHERE payload IS NULL;
ALTER TABLE stripe_events ALTER COLUMN payload SET NOT NULL;
