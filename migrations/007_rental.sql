-- +goose Up
-- The rental ledger (issue 11). payments: one row per captured payment of an order, its own
-- capture (kind order) and each paid extension (kind extension). refunds: every refund asked of
-- Stripe for a payment, under its own key refund-<payment>-<n>, so a refund is never above what
-- its payment captured minus what was already refunded of it (checked by the jobs, and by Stripe).
CREATE TABLE payments (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id          uuid NOT NULL REFERENCES orders (id),
    kind              text NOT NULL CHECK (kind IN ('order', 'extension')),
    payment_intent_id text NOT NULL UNIQUE,
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    hours             integer NOT NULL CHECK (hours >= 0),
    currency          text NOT NULL DEFAULT 'usd',
    captured_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order_idx ON payments (order_id, captured_at DESC);

CREATE TABLE refunds (
    id               bigserial PRIMARY KEY,
    payment_id       uuid NOT NULL REFERENCES payments (id),
    pod_id           uuid REFERENCES pods (id),
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    -- idempotency_key names the refund for good (metadata[gpubroker_key]): refund-<payment>-<n>.
    idempotency_key  text NOT NULL UNIQUE,
    stripe_refund_id text UNIQUE,
    reason           text NOT NULL CHECK (reason IN ('early_stop', 'pod_died', 'not_started', 'late_extension')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    refunded_at      timestamptz,
    -- one refund of each reason per pod and payment: a rerun plans nothing twice
    UNIQUE (payment_id, pod_id, reason)
);
CREATE INDEX refunds_pod_idx ON refunds (pod_id);

-- Extensions: hours bought on a running pod, paid at once through their own Checkout Session
-- (client_reference_id = the extension id). checkout_pending → paid once (the webhook job, in
-- the transaction that records the payment and moves the pod's end), or → expired.
CREATE TABLE extensions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pod_id            uuid NOT NULL REFERENCES pods (id),
    order_id          uuid NOT NULL REFERENCES orders (id),
    hours             integer NOT NULL CHECK (hours > 0),
    amount_cents      bigint NOT NULL CHECK (amount_cents > 0),
    currency          text NOT NULL DEFAULT 'usd',
    status            text NOT NULL DEFAULT 'checkout_pending' CHECK (status IN ('checkout_pending', 'paid', 'expired')),
    stripe_session_id text UNIQUE,
    payment_intent_id text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    paid_at           timestamptz,
    expired_at        timestamptz
);
CREATE INDEX extensions_pod_idx ON extensions (pod_id);

-- Health checks of running pods: consecutive checks that found the instance dead, and when the
-- first of them ran (the pod's end, for the refund of the hours not completed).
ALTER TABLE pods ADD COLUMN health_failures integer NOT NULL DEFAULT 0;
ALTER TABLE pods ADD COLUMN health_failed_since timestamptz;

-- The payments captured before the ledger existed.
INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours, currency, captured_at)
SELECT id, 'order', payment_intent_id, amount_cents, hours, currency, captured_at
FROM orders WHERE status IN ('captured', 'refunded') AND payment_intent_id IS NOT NULL AND captured_at IS NOT NULL;

-- +goose Down
ALTER TABLE pods DROP COLUMN health_failed_since;
ALTER TABLE pods DROP COLUMN health_failures;
DROP TABLE refunds, extensions, payments;
