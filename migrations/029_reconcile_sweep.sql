-- +goose NO TRANSACTION
-- Issue 24.2, found by make scale at SCALE=10: the reconciler's due orders (postgres.
-- OrdersToReconcile) after the never-compared ones were read least recently compared first,
-- from orders_reconcile_idx (reconciled_at, created_at). An order that leaves the 35-day window
-- keeps the time of its last comparison, inside that range, so each pass stepped over the
-- entries of every order that aged out in the last 35 days: 321 ms cold at SCALE=10. The window
-- is now swept in creation order instead, 200 orders a pass, from where the last pass stopped
-- (reconcile_sweep.cursor), over orders_sweep_idx: each pass reads its 200 and no more.
--
-- The index is built CONCURRENTLY (hence no transaction), as 016, 019, 023, 026 and 027.

-- +goose Up
CREATE TABLE IF NOT EXISTS reconcile_sweep (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    cursor timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO reconcile_sweep DEFAULT VALUES ON CONFLICT DO NOTHING;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_sweep_idx ON orders (created_at) INCLUDE (reconciled_at)
    WHERE payment_intent_id IS NOT NULL AND status IN ('authorized', 'captured', 'refunded', 'released');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS orders_sweep_idx;
DROP TABLE IF EXISTS reconcile_sweep;
