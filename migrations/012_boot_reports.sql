-- +goose Up
-- Issue 20.2: the pod's bootstrap reports its steps (keys, sshd, workspace, ide, ready) to
-- POST /api/pods/{id}/boot with a per-pod secret, fixed at the first launch like the IDE secret
-- (a relaunch or the instance found again by name gets the same one). The steps are shown to
-- the customer; they are never trusted for billing (readiness is the worker's own check).
ALTER TABLE pods ADD COLUMN boot_secret text;
CREATE TABLE boot_steps (
    id      bigserial PRIMARY KEY,
    pod_id  uuid NOT NULL REFERENCES pods (id),
    at      timestamptz NOT NULL DEFAULT now(),
    step    text NOT NULL,
    ok      boolean NOT NULL,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX boot_steps_pod_idx ON boot_steps (pod_id, id);

-- +goose Down
DROP TABLE boot_steps;
ALTER TABLE pods DROP COLUMN boot_secret;
