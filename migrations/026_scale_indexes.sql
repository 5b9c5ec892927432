-- +goose NO TRANSACTION
-- Issue 24.2, found by make scale at SCALE=10 (5M orders):
--
-- extensions_order_idx serves an order's extensions in its story (postgres.GetOrderStory, the
-- ops page of an order), which read all 174k extensions each time (308 ms).
--
-- extensions_paid_idx and refunds_early_stop_idx serve the console's tallies (postgres.
-- GetTallies: extensions paid, early-stop refunds made), which read the two tables whole.
--
-- Built CONCURRENTLY (hence no transaction), as 016, 019 and 023. A build that fails leaves an
-- INVALID index: drop it and migrate again.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS extensions_order_idx ON extensions (order_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS extensions_paid_idx ON extensions (id) WHERE status = 'paid';
CREATE INDEX CONCURRENTLY IF NOT EXISTS refunds_early_stop_idx ON refunds (pod_id) INCLUDE (amount_cents)
    WHERE reason = 'early_stop' AND stripe_refund_id IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS refunds_early_stop_idx;
DROP INDEX CONCURRENTLY IF EXISTS extensions_paid_idx;
DROP INDEX CONCURRENTLY IF EXISTS extensions_order_idx;
