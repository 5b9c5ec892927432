-- +goose NO TRANSACTION
-- Issue 24.2: postgres.StrandedPods (the reconciler, every run) on an index of its own. It looks
-- for captured orders whose pod never ran and is failed or stuck provisioning, with no refund.
-- Every pod whose order was refunded, or whose hold was released before it deployed, is failed
-- and never started, so an index over such pods would hold a tenth of all pods and grow
-- forever. pods.settled_at marks them: postgres.MoveOrder sets it on an order's pods that have
-- not started, in the transaction that moves the order to a final status other than captured
-- (refunded, released, expired; no move leaves those), after which its pod can never be
-- stranded. pods_stranded_idx holds only the pods that never started, are failed or
-- provisioning and are not settled: the few being provisioned and the stranded ones.
--
-- The backfill marks the pods the index would otherwise hold (failed or provisioning). It runs
-- before the index is built, each statement on its own (CONCURRENTLY, as 016): a pod settled
-- meanwhile by the previous release only stays in the index, which StrandedPods' own
-- conditions (the order captured, no refund) still exclude.

-- +goose Up
ALTER TABLE pods ADD COLUMN IF NOT EXISTS settled_at timestamptz;
UPDATE pods p SET settled_at = COALESCE(o.refunded_at, o.released_at, o.expired_at, now())
FROM orders o
WHERE o.id = p.order_id AND o.status IN ('refunded', 'released', 'expired')
AND p.started_at IS NULL AND p.settled_at IS NULL AND p.status IN ('failed', 'provisioning');
CREATE INDEX CONCURRENTLY IF NOT EXISTS pods_stranded_idx ON pods (captured_at)
WHERE started_at IS NULL AND settled_at IS NULL AND status IN ('failed', 'provisioning');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS pods_stranded_idx;
ALTER TABLE pods DROP COLUMN IF EXISTS settled_at;
