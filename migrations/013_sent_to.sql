-- +goose Up
-- Issue 20.5: a pod's provisioning looks for an instance already launched under its name only
-- at the providers it was ever sent a launch to, so one provider's outage no longer stops
-- launches everywhere. sent_at is the last send: a provider that cannot answer after a send
-- whose answer was lost is waited for, but only so long.
ALTER TABLE pods ADD COLUMN sent_to text[] NOT NULL DEFAULT '{}';
ALTER TABLE pods ADD COLUMN sent_at timestamptz;
-- Pods provisioning when this runs may have been sent anywhere: ask every provider, as before.
UPDATE pods SET sent_to = ARRAY['*'] WHERE status = 'provisioning';

-- +goose Down
ALTER TABLE pods DROP COLUMN sent_at;
ALTER TABLE pods DROP COLUMN sent_to;
