-- Issue 24.2: the ops counts by status and action (gpubroker_orders, gpubroker_pods,
-- gpubroker_audit_events_total) from delta rows instead of a GROUP BY over whole tables. Every
-- statement that inserts, moves or deletes orders, pods or audit events appends its own rows
-- (metric, key, +n/-n) in its own transaction, so concurrent commits never wait on a shared
-- counter row; the ops collector sums them per key and folds them into one row per key as it
-- goes (postgres.SumCounts, one process at a time under an advisory lock), so the table stays
-- small. The triggers and the backfill run in one transaction: the counts start exact.

-- +goose Up
CREATE TABLE ops_counts (
    id     bigserial PRIMARY KEY,
    metric text NOT NULL,
    key    text NOT NULL,
    n      bigint NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION ops_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'audit_events' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ops_counts (metric, key, n) SELECT 'audit', action, count(*) FROM new_rows GROUP BY action;
        ELSE
            INSERT INTO ops_counts (metric, key, n) SELECT 'audit', action, -count(*) FROM old_rows GROUP BY action;
        END IF;
    ELSIF TG_TABLE_NAME = 'orders' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ops_counts (metric, key, n) SELECT 'orders', status, count(*) FROM new_rows GROUP BY status;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO ops_counts (metric, key, n) SELECT 'orders', status, -count(*) FROM old_rows GROUP BY status;
        ELSE
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'orders', status, sum(d) FROM (SELECT status, -1 AS d FROM old_rows UNION ALL SELECT status, 1 FROM new_rows) x
            GROUP BY status HAVING sum(d) <> 0;
        END IF;
    ELSIF TG_TABLE_NAME = 'pods' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ops_counts (metric, key, n) SELECT 'pods', status || '|' || COALESCE(provider, ''), count(*) FROM new_rows GROUP BY 2;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO ops_counts (metric, key, n) SELECT 'pods', status || '|' || COALESCE(provider, ''), -count(*) FROM old_rows GROUP BY 2;
        ELSE
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'pods', k, sum(d) FROM (SELECT status || '|' || COALESCE(provider, '') AS k, -1 AS d FROM old_rows
                                          UNION ALL SELECT status || '|' || COALESCE(provider, ''), 1 FROM new_rows) x
            GROUP BY k HAVING sum(d) <> 0;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_count_ins AFTER INSERT ON audit_events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER audit_events_count_del AFTER DELETE ON audit_events REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER orders_count_ins AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER orders_count_upd AFTER UPDATE ON orders REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER orders_count_del AFTER DELETE ON orders REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER pods_count_ins AFTER INSERT ON pods REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER pods_count_upd AFTER UPDATE ON pods REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();
CREATE TRIGGER pods_count_del AFTER DELETE ON pods REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops_count_deltas();

INSERT INTO ops_counts (metric, key, n) SELECT 'audit', action, count(*) FROM audit_events GROUP BY action;
INSERT INTO ops_counts (metric, key, n) SELECT 'orders', status, count(*) FROM orders GROUP BY status;
INSERT INTO ops_counts (metric, key, n) SELECT 'pods', status || '|' || COALESCE(provider, ''), count(*) FROM pods GROUP BY 2;

-- +goose Down
DROP TRIGGER pods_count_del ON pods;
DROP TRIGGER pods_count_upd ON pods;
DROP TRIGGER pods_count_ins ON pods;
DROP TRIGGER orders_count_del ON orders;
DROP TRIGGER orders_count_upd ON orders;
DROP TRIGGER orders_count_ins ON orders;
DROP TRIGGER audit_events_count_del ON audit_events;
DROP TRIGGER audit_events_count_ins ON audit_events;
DROP FUNCTION ops_count_deltas();
DROP TABLE ops_counts;
