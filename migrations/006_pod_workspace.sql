-- +goose Up
-- What a pod's instance is launched with, fixed at its first launch so every retry (and the
-- instance found again by name) agrees: the account's keys at that moment, their fingerprints
-- (shown on the pod), and the pod's own IDE secret (Jupyter token / code-server password),
-- shown only to its owner.
ALTER TABLE pods ADD COLUMN ide_secret text;
ALTER TABLE pods ADD COLUMN launch_keys text[];
ALTER TABLE pods ADD COLUMN ssh_key_fingerprints text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE pods DROP COLUMN ssh_key_fingerprints;
ALTER TABLE pods DROP COLUMN launch_keys;
ALTER TABLE pods DROP COLUMN ide_secret;
