-- +goose Up
-- The SSH public keys an account brings to its pods: every key goes onto every instance it
-- deploys. A key is listed once per account (by fingerprint).
CREATE TABLE ssh_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    name        text NOT NULL,
    type        text NOT NULL,
    fingerprint text NOT NULL,
    public_key  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, fingerprint)
);

-- The key typed at checkout, saved on the account the order lands on when the buyer may add
-- keys to it: the account the order created, or the one the buyer was signed in to.
ALTER TABLE orders ADD COLUMN ssh_public_key text;
ALTER TABLE orders ADD COLUMN buyer_account_id uuid REFERENCES accounts (id);

-- +goose Down
ALTER TABLE orders DROP COLUMN buyer_account_id;
ALTER TABLE orders DROP COLUMN ssh_public_key;
DROP TABLE ssh_keys;
