-- +goose Up
-- Issue 24.3: the pod health watch's last pass, for the ops collector (the pass time as a
-- gauge, its age, its outcome): one row, replaced by every pass. A pass asks each provider that
-- has running pods for its instances once; pods counts the running pods it looked at, split into
-- healthy, dead (a dead check noted) and unknown (their provider could not list, or reported a
-- status we cannot interpret: nothing noted).
CREATE TABLE pod_health_pass (
    only_row         boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    started_at       timestamptz NOT NULL,
    seconds          double precision NOT NULL,
    pods             integer NOT NULL,
    healthy          integer NOT NULL,
    dead             integer NOT NULL,
    unknown          integer NOT NULL,
    list_calls       integer NOT NULL,
    failed_providers text[] NOT NULL DEFAULT '{}'
);

-- +goose Down
DROP TABLE pod_health_pass;
