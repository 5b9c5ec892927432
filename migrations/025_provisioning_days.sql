-- Issue 24.2: the console's Deploy-to-running time per day (postgres.ProvisioningByDay) without a
-- percentile over every pod started in the window (a 30-day window is a month of pods: 117 ms at
-- SCALE=1, ten times that at SCALE=10, on every collection).
--
-- ops_counts' metric 'provisioning_day' is migration 018's whole-second histogram kept per UTC
-- day of the start: key = 'YYYY-MM-DD|<floored seconds>' ('YYYY-MM-DD|' for a pod that started
-- without a Deploy time), appended by each statement that starts, retimes or deletes pods, in
-- its own transaction (delta rows, no shared counter row). The key sorts by day, so a window is
-- one range of ops_counts_metric_key_idx, which also serves every other metric's fold and read
-- (postgres.SumCounts) instead of a scan of the whole table.
--
-- The trigger and the backfill run in one transaction: the counts start exact.

-- +goose Up
CREATE INDEX ops_counts_metric_key_idx ON ops_counts (metric, key);

-- +goose StatementBegin
CREATE FUNCTION provisioning_day_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops_counts (metric, key, n)
        SELECT 'provisioning_day', provisioning_day_key(started_at, deploy_requested_at), count(*)
        FROM new_rows WHERE started_at IS NOT NULL GROUP BY 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops_counts (metric, key, n)
        SELECT 'provisioning_day', provisioning_day_key(started_at, deploy_requested_at), -count(*)
        FROM old_rows WHERE started_at IS NOT NULL GROUP BY 2;
    ELSE
        INSERT INTO ops_counts (metric, key, n)
        SELECT 'provisioning_day', k, sum(d) FROM (
            SELECT provisioning_day_key(started_at, deploy_requested_at) AS k, -1 AS d FROM old_rows WHERE started_at IS NOT NULL
            UNION ALL
            SELECT provisioning_day_key(started_at, deploy_requested_at), 1 FROM new_rows WHERE started_at IS NOT NULL) x
        GROUP BY k HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE FUNCTION provisioning_day_key(started_at timestamptz, deploy_requested_at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' ||
           COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, '');

CREATE TRIGGER pods_provisioning_day_ins AFTER INSERT ON pods REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION provisioning_day_deltas();
CREATE TRIGGER pods_provisioning_day_upd AFTER UPDATE ON pods REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION provisioning_day_deltas();
CREATE TRIGGER pods_provisioning_day_del AFTER DELETE ON pods REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION provisioning_day_deltas();

INSERT INTO ops_counts (metric, key, n)
SELECT 'provisioning_day', provisioning_day_key(started_at, deploy_requested_at), count(*)
FROM pods WHERE started_at IS NOT NULL GROUP BY 2;
-- Statistics for the rows just added (a year of days at make scale's SCALE=10: 87,725 keys),
-- before the first collector plans its reads on the table's old, tiny size.
ANALYZE ops_counts;

-- +goose Down
DELETE FROM ops_counts WHERE metric = 'provisioning_day';
DROP TRIGGER pods_provisioning_day_del ON pods;
DROP TRIGGER pods_provisioning_day_upd ON pods;
DROP TRIGGER pods_provisioning_day_ins ON pods;
DROP FUNCTION provisioning_day_deltas();
DROP FUNCTION provisioning_day_key(timestamptz, timestamptz);
DROP INDEX ops_counts_metric_key_idx;
