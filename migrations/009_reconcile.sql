-- +goose Up
-- The reconciler compares each paid order with its PaymentIntent at Stripe: when it last did
-- (reconciled_at) and what disagreed the last time (drift, NULL when Stripe agreed), for ops.
ALTER TABLE orders ADD COLUMN reconciled_at timestamptz;
ALTER TABLE orders ADD COLUMN drift text;
CREATE INDEX orders_drift_idx ON orders (id) WHERE drift IS NOT NULL;

-- +goose Down
DROP INDEX orders_drift_idx;
ALTER TABLE orders DROP COLUMN drift;
ALTER TABLE orders DROP COLUMN reconciled_at;
