-- +goose Up
-- The core tables. Status columns are guarded by CHECK constraints; transitions are guarded by
-- the UPDATE ... WHERE status = <expected> statements in package postgres.

CREATE TABLE accounts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email        text NOT NULL UNIQUE CHECK (email = lower(email)),
    name         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz
);

CREATE TABLE orders (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id        uuid REFERENCES accounts (id),
    email             text NOT NULL CHECK (email = lower(email)),
    name              text NOT NULL,
    plan              text NOT NULL,
    template          text NOT NULL,
    gpu               text NOT NULL,
    region            text NOT NULL,
    hours             integer NOT NULL CHECK (hours > 0),
    hourly_cents      bigint NOT NULL CHECK (hourly_cents >= 0),
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    currency          text NOT NULL DEFAULT 'usd',
    status            text NOT NULL CHECK (status IN ('checkout_pending', 'free', 'authorized', 'captured', 'refunded', 'expired', 'released', 'declined')),
    stripe_session_id text UNIQUE,
    payment_intent_id text UNIQUE,
    refund_id         text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    authorized_at     timestamptz,
    hold_expires_at   timestamptz,
    captured_at       timestamptz,
    released_at       timestamptz,
    refunded_at       timestamptz,
    expired_at        timestamptz
);
CREATE INDEX orders_email_idx ON orders (email);
CREATE INDEX orders_account_idx ON orders (account_id);

-- One free trial per email, enforced by the primary key.
CREATE TABLE trial_claims (
    email      text PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pods (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id      uuid NOT NULL UNIQUE REFERENCES orders (id),
    account_id    uuid REFERENCES accounts (id),
    status        text NOT NULL DEFAULT 'configured' CHECK (status IN ('configured', 'deploying', 'provisioning', 'running', 'terminating', 'terminated', 'failed')),
    gpu           text NOT NULL,
    region        text NOT NULL,
    hours         integer NOT NULL,
    template      text NOT NULL,
    provider      text,
    instance_id   text,
    offer_id      text,
    cost_cents_per_hour bigint,
    failed_offers text[] NOT NULL DEFAULT '{}',
    connection    jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deploy_requested_at timestamptz,
    captured_at   timestamptz,
    launched_at   timestamptz,
    started_at    timestamptz,
    ends_at       timestamptz,
    terminated_at timestamptz
);
CREATE INDEX pods_account_idx ON pods (account_id);

-- Every Stripe event we accepted, under its id: the unique key is the deduplication.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    object_id   text NOT NULL,
    order_id    uuid,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);

-- Activation and sign-in tokens. Only the SHA-256 of the token is stored.
CREATE TABLE tokens (
    hash       bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    purpose    text NOT NULL CHECK (purpose IN ('activation', 'login')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX tokens_account_idx ON tokens (account_id);

-- Browser sessions. Only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    hash       bytea PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_account_idx ON sessions (account_id);

-- The outbox: every email is rendered and stored here before any attempt to send it.
CREATE TABLE emails (
    id          bigserial PRIMARY KEY,
    to_email    text NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL,
    text_body   text NOT NULL,
    html_body   text NOT NULL,
    -- dedupe_key makes "send this email for this event" idempotent (e.g. activation:<order>).
    dedupe_key  text UNIQUE,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    provider    text,
    provider_message_id text,
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX emails_to_idx ON emails (to_email, created_at DESC);

-- Addresses we never send to again (permanent bounces, complaints).
CREATE TABLE suppressions (
    email      text PRIMARY KEY,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- SES feedback, deduplicated by feedback id and recipient.
CREATE TABLE email_feedback (
    feedback_id text NOT NULL,
    email       text NOT NULL,
    kind        text NOT NULL,
    bounce_type text,
    message_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feedback_id, email)
);

-- The audit log of every state change.
CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    account_id uuid,
    order_id   uuid,
    pod_id     uuid,
    action     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_order_idx ON audit_events (order_id);

-- Fixed-window rate limit counters, shared by every API process.
CREATE TABLE rate_limits (
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL,
    PRIMARY KEY (key, window_start)
);

CREATE TABLE contact_messages (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    company    text NOT NULL DEFAULT '',
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The last known offers of every provider, refreshed by a periodic job.
CREATE TABLE offers (
    provider       text NOT NULL,
    offer_id       text NOT NULL,
    gpu            text NOT NULL,
    region         text NOT NULL,
    cents_per_hour bigint NOT NULL,
    available      boolean NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, offer_id)
);

-- +goose Down
DROP TABLE offers, contact_messages, rate_limits, audit_events, email_feedback, suppressions,
    emails, sessions, tokens, stripe_events, pods, trial_claims, orders, accounts;
