-- +goose NO TRANSACTION
-- The console's and /metrics' count of emails we gave up on (postgres.GetTallies,
-- EmailsFailed7d): a partial index over the few failed ones, so the count never reads the
-- outbox's millions of sent rows.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS emails_failed_idx ON emails (created_at) WHERE status = 'failed';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS emails_failed_idx;
