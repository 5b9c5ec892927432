-- +goose Up
-- How many provisioning rounds found no capacity anywhere: the refund budget, counted apart
-- from River's attempts (which also count transient provider errors).
ALTER TABLE pods ADD COLUMN no_capacity_rounds integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE pods DROP COLUMN no_capacity_rounds;
