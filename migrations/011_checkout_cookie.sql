-- +goose Up
-- Issue 19.1: a Checkout Session id travels in a URL, so it proves nothing about who paid. The
-- paying browser gets an HttpOnly checkout cookie from POST /api/checkout; only its SHA-256 is
-- stored on the order, and only the browser holding it is signed in by verify.
ALTER TABLE orders ADD COLUMN checkout_cookie_hash bytea;

-- The checkout whose cookie opened a provisional session (via_checkout).
ALTER TABLE sessions ADD COLUMN order_id uuid REFERENCES orders (id);

-- A provisional key records the checkout whose payer added it: typed at that checkout, or added
-- through a provisional session that checkout's cookie opened. Activation keeps only the keys of
-- the activating session's checkout. Keys and sessions from before this migration record none,
-- so they are dropped at activation: nobody can tell who added them.
ALTER TABLE ssh_keys ADD COLUMN payer_order_id uuid REFERENCES orders (id);

-- Issue 19.2: the reconciler ends running pods past their paid end (postgres.OverduePods).
CREATE INDEX pods_running_ends_idx ON pods (ends_at) WHERE status = 'running';

-- +goose Down
DROP INDEX pods_running_ends_idx;
ALTER TABLE ssh_keys DROP COLUMN payer_order_id;
ALTER TABLE sessions DROP COLUMN order_id;
ALTER TABLE orders DROP COLUMN checkout_cookie_hash;
