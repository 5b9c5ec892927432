-- Issue 24.2: the funnel kept per UTC hour of the orders' creation instead of per day (migration
-- 018), found by make scale at SCALE=10 (5M orders, about 13,700 a day): the collector's fold of
-- today's dirty day (1,306 ms cold) and CountFunnel's read of the window's partial first day and
-- the dirty days (97-112 ms p50) each counted up to a day of orders from the orders themselves.
-- Per hour, they count an hour's orders (about 570 at SCALE=10); the kept part sums 24 rows a
-- day (8,760 a year). Same design as 018 otherwise: append-only dirty markers written by each
-- writer's own statement, folded by the collector; see 018's header.
--
-- The markers and the counts are rebuilt from the orders in this transaction (the triggers'
-- DDL holds writes on orders, pods and accounts until it commits): the counts start exact.

-- +goose Up
DROP TRIGGER orders_funnel_ins ON orders;
DROP TRIGGER orders_funnel_upd ON orders;
DROP TRIGGER orders_funnel_del ON orders;
DROP TRIGGER pods_funnel_ins ON pods;
DROP TRIGGER pods_funnel_upd ON pods;
DROP TRIGGER pods_funnel_del ON pods;
DROP TRIGGER accounts_funnel_upd ON accounts;
DROP FUNCTION funnel_dirty_days();
DROP INDEX orders_created_day_idx;
-- The dirty hours' orders, by the hour (an equality, as 018's day).
CREATE INDEX orders_created_hour_idx ON orders ((date_trunc('hour', created_at AT TIME ZONE 'UTC')));
ALTER TABLE funnel_days RENAME TO funnel_hours;
ALTER TABLE funnel_hours RENAME COLUMN day TO hour;
TRUNCATE funnel_hours, funnel_dirty;
ALTER TABLE funnel_hours ALTER COLUMN hour TYPE timestamp;
ALTER TABLE funnel_dirty RENAME COLUMN day TO hour;
ALTER TABLE funnel_dirty ALTER COLUMN hour TYPE timestamp;
ALTER INDEX funnel_dirty_day_idx RENAME TO funnel_dirty_hour_idx;
ALTER INDEX funnel_days_pkey RENAME TO funnel_hours_pkey;

-- +goose StatementBegin
CREATE FUNCTION funnel_dirty_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO funnel_dirty (hour) SELECT DISTINCT date_trunc('hour', created_at AT TIME ZONE 'UTC') FROM new_rows;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO funnel_dirty (hour) SELECT DISTINCT date_trunc('hour', created_at AT TIME ZONE 'UTC') FROM old_rows;
        ELSE
            INSERT INTO funnel_dirty (hour)
            SELECT DISTINCT d FROM (
                SELECT date_trunc('hour', o.created_at AT TIME ZONE 'UTC') AS d1, date_trunc('hour', n.created_at AT TIME ZONE 'UTC') AS d2
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE (o.status, o.authorized_at IS NULL, o.account_id, o.created_at)
                      IS DISTINCT FROM (n.status, n.authorized_at IS NULL, n.account_id, n.created_at)) x,
                LATERAL (VALUES (d1), (d2)) v(d);
        END IF;
    ELSIF TG_TABLE_NAME = 'pods' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO funnel_dirty (hour)
            SELECT DISTINCT date_trunc('hour', o.created_at AT TIME ZONE 'UTC') FROM new_rows p JOIN orders o ON o.id = p.order_id
            WHERE p.deploy_requested_at IS NOT NULL OR p.captured_at IS NOT NULL OR p.started_at IS NOT NULL;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO funnel_dirty (hour)
            SELECT DISTINCT date_trunc('hour', o.created_at AT TIME ZONE 'UTC') FROM old_rows p JOIN orders o ON o.id = p.order_id
            WHERE p.deploy_requested_at IS NOT NULL OR p.captured_at IS NOT NULL OR p.started_at IS NOT NULL;
        ELSE
            INSERT INTO funnel_dirty (hour)
            SELECT DISTINCT date_trunc('hour', o.created_at AT TIME ZONE 'UTC')
            FROM (SELECT op.order_id AS a, np.order_id AS b FROM old_rows op JOIN new_rows np ON np.id = op.id
                  WHERE (op.order_id, op.deploy_requested_at IS NULL, op.captured_at IS NULL, op.started_at IS NULL)
                        IS DISTINCT FROM (np.order_id, np.deploy_requested_at IS NULL, np.captured_at IS NULL, np.started_at IS NULL)) x,
                 LATERAL (VALUES (a), (b)) v(order_id)
            JOIN orders o ON o.id = v.order_id;
        END IF;
        -- The provisioning histogram (ops_counts' metric 'provisioning').
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), count(*)
            FROM new_rows WHERE started_at IS NOT NULL GROUP BY 2;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), -count(*)
            FROM old_rows WHERE started_at IS NOT NULL GROUP BY 2;
        ELSE
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', k, sum(d) FROM (
                SELECT COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, '') AS k, -1 AS d
                FROM old_rows WHERE started_at IS NOT NULL
                UNION ALL
                SELECT COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), 1
                FROM new_rows WHERE started_at IS NOT NULL) x
            GROUP BY k HAVING sum(d) <> 0;
        END IF;
    ELSIF TG_TABLE_NAME = 'accounts' THEN
        -- Only UPDATE: an account's orders point at it, so it exists before them and outlives them.
        INSERT INTO funnel_dirty (hour)
        SELECT DISTINCT date_trunc('hour', o.created_at AT TIME ZONE 'UTC')
        FROM old_rows oa JOIN new_rows na ON na.id = oa.id JOIN orders o ON o.account_id = na.id
        WHERE (oa.status = 'active') IS DISTINCT FROM (na.status = 'active');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER orders_funnel_ins AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER orders_funnel_upd AFTER UPDATE ON orders REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER orders_funnel_del AFTER DELETE ON orders REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER pods_funnel_ins AFTER INSERT ON pods REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER pods_funnel_upd AFTER UPDATE ON pods REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER pods_funnel_del AFTER DELETE ON pods REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();
CREATE TRIGGER accounts_funnel_upd AFTER UPDATE ON accounts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_hours();

-- The backfill: the same definitions as postgres.CountFunnel's (funnelColumns, funnelSums).
INSERT INTO funnel_hours
SELECT hour, count(*),
       count(*) FILTER (WHERE authorized),
       count(*) FILTER (WHERE authorized AND active),
       count(*) FILTER (WHERE authorized AND active AND deployed),
       count(*) FILTER (WHERE authorized AND active AND deployed AND captured),
       count(*) FILTER (WHERE authorized AND active AND deployed AND captured AND ran),
       count(*) FILTER (WHERE paid),
       count(*) FILTER (WHERE paid AND authorized)
FROM (SELECT date_trunc('hour', o.created_at AT TIME ZONE 'UTC') AS hour,
             o.status <> 'free' AS paid,
             (o.authorized_at IS NOT NULL OR o.status = 'free') AS authorized,
             COALESCE(a.status = 'active', false) AS active,
             p.deploy_requested_at IS NOT NULL AS deployed,
             p.captured_at IS NOT NULL AS captured,
             p.started_at IS NOT NULL AS ran
      FROM orders o LEFT JOIN accounts a ON a.id = o.account_id LEFT JOIN pods p ON p.order_id = o.id) x
GROUP BY hour;
-- Statistics for the new expression index, before the first fold plans on it: without them,
-- the dirty hours' orders were read at SCALE=10 as if each hour held 25,000 orders (2,148 ms).
ANALYZE orders;

-- +goose Down
DROP TRIGGER orders_funnel_ins ON orders;
DROP TRIGGER orders_funnel_upd ON orders;
DROP TRIGGER orders_funnel_del ON orders;
DROP TRIGGER pods_funnel_ins ON pods;
DROP TRIGGER pods_funnel_upd ON pods;
DROP TRIGGER pods_funnel_del ON pods;
DROP TRIGGER accounts_funnel_upd ON accounts;
DROP FUNCTION funnel_dirty_hours();
DROP INDEX orders_created_hour_idx;
CREATE INDEX orders_created_day_idx ON orders (((created_at AT TIME ZONE 'UTC')::date));
TRUNCATE funnel_hours, funnel_dirty;
ALTER INDEX funnel_hours_pkey RENAME TO funnel_days_pkey;
ALTER INDEX funnel_dirty_hour_idx RENAME TO funnel_dirty_day_idx;
ALTER TABLE funnel_dirty ALTER COLUMN hour TYPE date;
ALTER TABLE funnel_dirty RENAME COLUMN hour TO day;
ALTER TABLE funnel_hours ALTER COLUMN hour TYPE date;
ALTER TABLE funnel_hours RENAME COLUMN hour TO day;
ALTER TABLE funnel_hours RENAME TO funnel_days;

-- +goose StatementBegin
CREATE FUNCTION funnel_dirty_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO funnel_dirty (day) SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM new_rows;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO funnel_dirty (day) SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM old_rows;
        ELSE
            INSERT INTO funnel_dirty (day)
            SELECT DISTINCT d FROM (
                SELECT (o.created_at AT TIME ZONE 'UTC')::date AS d1, (n.created_at AT TIME ZONE 'UTC')::date AS d2
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE (o.status, o.authorized_at IS NULL, o.account_id, o.created_at)
                      IS DISTINCT FROM (n.status, n.authorized_at IS NULL, n.account_id, n.created_at)) x,
                LATERAL (VALUES (d1), (d2)) v(d);
        END IF;
    ELSIF TG_TABLE_NAME = 'pods' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO funnel_dirty (day)
            SELECT DISTINCT (o.created_at AT TIME ZONE 'UTC')::date FROM new_rows p JOIN orders o ON o.id = p.order_id
            WHERE p.deploy_requested_at IS NOT NULL OR p.captured_at IS NOT NULL OR p.started_at IS NOT NULL;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO funnel_dirty (day)
            SELECT DISTINCT (o.created_at AT TIME ZONE 'UTC')::date FROM old_rows p JOIN orders o ON o.id = p.order_id
            WHERE p.deploy_requested_at IS NOT NULL OR p.captured_at IS NOT NULL OR p.started_at IS NOT NULL;
        ELSE
            INSERT INTO funnel_dirty (day)
            SELECT DISTINCT (o.created_at AT TIME ZONE 'UTC')::date
            FROM (SELECT op.order_id AS a, np.order_id AS b FROM old_rows op JOIN new_rows np ON np.id = op.id
                  WHERE (op.order_id, op.deploy_requested_at IS NULL, op.captured_at IS NULL, op.started_at IS NULL)
                        IS DISTINCT FROM (np.order_id, np.deploy_requested_at IS NULL, np.captured_at IS NULL, np.started_at IS NULL)) x,
                 LATERAL (VALUES (a), (b)) v(order_id)
            JOIN orders o ON o.id = v.order_id;
        END IF;
        -- The provisioning histogram (ops_counts' metric 'provisioning').
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), count(*)
            FROM new_rows WHERE started_at IS NOT NULL GROUP BY 2;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), -count(*)
            FROM old_rows WHERE started_at IS NOT NULL GROUP BY 2;
        ELSE
            INSERT INTO ops_counts (metric, key, n)
            SELECT 'provisioning', k, sum(d) FROM (
                SELECT COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, '') AS k, -1 AS d
                FROM old_rows WHERE started_at IS NOT NULL
                UNION ALL
                SELECT COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), 1
                FROM new_rows WHERE started_at IS NOT NULL) x
            GROUP BY k HAVING sum(d) <> 0;
        END IF;
    ELSIF TG_TABLE_NAME = 'accounts' THEN
        -- Only UPDATE: an account's orders point at it, so it exists before them and outlives them.
        INSERT INTO funnel_dirty (day)
        SELECT DISTINCT (o.created_at AT TIME ZONE 'UTC')::date
        FROM old_rows oa JOIN new_rows na ON na.id = oa.id JOIN orders o ON o.account_id = na.id
        WHERE (oa.status = 'active') IS DISTINCT FROM (na.status = 'active');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER orders_funnel_ins AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER orders_funnel_upd AFTER UPDATE ON orders REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER orders_funnel_del AFTER DELETE ON orders REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER pods_funnel_ins AFTER INSERT ON pods REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER pods_funnel_upd AFTER UPDATE ON pods REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER pods_funnel_del AFTER DELETE ON pods REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();
CREATE TRIGGER accounts_funnel_upd AFTER UPDATE ON accounts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funnel_dirty_days();

INSERT INTO funnel_days
SELECT day, count(*),
       count(*) FILTER (WHERE authorized),
       count(*) FILTER (WHERE authorized AND active),
       count(*) FILTER (WHERE authorized AND active AND deployed),
       count(*) FILTER (WHERE authorized AND active AND deployed AND captured),
       count(*) FILTER (WHERE authorized AND active AND deployed AND captured AND ran),
       count(*) FILTER (WHERE paid),
       count(*) FILTER (WHERE paid AND authorized)
FROM (SELECT (o.created_at AT TIME ZONE 'UTC')::date AS day,
             o.status <> 'free' AS paid,
             (o.authorized_at IS NOT NULL OR o.status = 'free') AS authorized,
             COALESCE(a.status = 'active', false) AS active,
             p.deploy_requested_at IS NOT NULL AS deployed,
             p.captured_at IS NOT NULL AS captured,
             p.started_at IS NOT NULL AS ran
      FROM orders o LEFT JOIN accounts a ON a.id = o.account_id LEFT JOIN pods p ON p.order_id = o.id) x
GROUP BY day;
ANALYZE orders;
