-- +goose NO TRANSACTION
-- Issue 24.2: the reconciler's reads on indexes of their own (make scale, SCALE=1: 180–400 ms
-- and 183 ms cold before).
--
-- orders_reconcile_idx serves postgres.OrdersToReconcile: its conditions on status and
-- payment_intent_id are the index's predicate, and its order (reconciled_at NULLS FIRST,
-- created_at) the key, so the scan stops after the batch; the 35-day bound on created_at is
-- checked in the index, without reading the rows it leaves out.
--
-- audit_events_reconcile_idx serves postgres.ReconcileRepairs (the console's latest repairs, by
-- id DESC): it holds only the reconciler's repair actions, a handful, where
-- audit_events_action_idx (action, created_at) made it walk the whole audit trail backwards by id.
-- The predicate is the query's own IN list: change both together.
--
-- Built CONCURRENTLY (hence no transaction), as 016 and 019. A build that fails leaves an
-- INVALID index: drop it and migrate again.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_reconcile_idx ON orders (reconciled_at NULLS FIRST, created_at)
    WHERE payment_intent_id IS NOT NULL AND status IN ('authorized', 'captured', 'refunded', 'released');
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_reconcile_idx ON audit_events (id)
    WHERE action IN ('reconcile.orphan_instance', 'reconcile.overdue_pod', 'reconcile.refund_queued', 'reconcile.provision_requeued');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS audit_events_reconcile_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders_reconcile_idx;
