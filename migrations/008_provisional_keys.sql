-- +goose Up
-- SSH keys added while an account is still pending (by the checkout that created it, or through
-- that checkout's provisional session) are provisional: anyone can pay with someone else's
-- email, so they stay only if the activation comes from the browser that paid; otherwise they
-- are deleted at activation, before they can reach the owner's pods.
ALTER TABLE ssh_keys ADD COLUMN provisional boolean NOT NULL DEFAULT false;
UPDATE ssh_keys k SET provisional = true FROM accounts a WHERE a.id = k.account_id AND a.status = 'pending';

-- +goose Down
ALTER TABLE ssh_keys DROP COLUMN provisional;
