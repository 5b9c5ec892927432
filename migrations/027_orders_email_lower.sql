-- +goose NO TRANSACTION
-- Issue 24.2, found by make scale at SCALE=10: the console's search for a whole address
-- (postgres.SearchOrders) looks it up in any case on this index; searched as a part of an
-- address through orders_email_trgm_idx, it read the posting lists of trigrams every address
-- has ("@ex", "com"): 204 ms p50 for GET /ops/orders?q=<email>.
--
-- Built CONCURRENTLY (hence no transaction), as 016, 019, 023 and 026.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_email_lower_idx ON orders (lower(email));

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS orders_email_lower_idx;
