-- Issue 24.3: the funnel and the all-time provisioning percentiles without a join or a sort over
-- whole tables.
--
-- The funnel (postgres.CountFunnel) is kept per UTC day of the orders' creation in funnel_days,
-- one row per day with the day's eight counts. A funnel step depends on three tables written by
-- different transactions (the order's status and authorization, its account's status, its
-- pod's deploy, capture and start), so a +1/-1 per step computed inside one writer's
-- transaction could miss another writer's concurrent commit on the same order and drift for
-- good. Instead every statement that changes what the funnel reads appends, in its own
-- transaction, a row naming the creation days it touched to funnel_dirty (append only: no
-- shared row, no waiting between writers). The reader sums funnel_days over the days that are
-- not dirty and counts the dirty days (and the window's partial first day) from the orders
-- themselves, in one statement: exact at that statement's snapshot. The collector folds the
-- dirty days into funnel_days as it goes (postgres.CountFunnel, one folder at a time under an
-- advisory lock taken before the fold's snapshot), so only the days changed since the last
-- collection are ever counted from the orders: a few hundred rows.
--
-- The Deploy-to-running histogram is ops_counts' metric 'provisioning' (migration 017's delta
-- rows, folded by postgres.SumCounts): key = whole seconds from deploy_requested_at to
-- started_at (floor), '' for a pod that started without a Deploy time; appended when a pod
-- starts (or its times change, or it is deleted).
--
-- The triggers and the backfill run in one transaction: the counts start exact.

-- +goose Up
CREATE TABLE funnel_days (
    day               date PRIMARY KEY,
    checkouts_started bigint NOT NULL,
    authorized        bigint NOT NULL,
    activated         bigint NOT NULL,
    deployed          bigint NOT NULL,
    captured          bigint NOT NULL,
    running           bigint NOT NULL,
    paid_checkouts    bigint NOT NULL,
    paid_authorized   bigint NOT NULL
);

CREATE TABLE funnel_dirty (
    id  bigserial PRIMARY KEY,
    day date NOT NULL
);
CREATE INDEX funnel_dirty_day_idx ON funnel_dirty (day);
-- The dirty days' orders, by the day (an equality the planner estimates from the index's
-- statistics; a range per day would be estimated at a ninth of the table). Built in the
-- migration's transaction: the triggers' DDL and the backfill hold writes on orders anyway.
CREATE INDEX orders_created_day_idx ON orders (((created_at AT TIME ZONE 'UTC')::date));

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

-- The backfill: the same definitions as postgres.CountFunnel's (funnelColumns, funnelSums).
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

INSERT INTO ops_counts (metric, key, n)
SELECT 'provisioning', COALESCE(floor(extract(epoch FROM started_at - deploy_requested_at))::bigint::text, ''), count(*)
FROM pods WHERE started_at IS NOT NULL GROUP BY 2;

-- +goose Down
DELETE FROM ops_counts WHERE metric = 'provisioning';
DROP TRIGGER accounts_funnel_upd ON accounts;
DROP TRIGGER pods_funnel_del ON pods;
DROP TRIGGER pods_funnel_upd ON pods;
DROP TRIGGER pods_funnel_ins ON pods;
DROP TRIGGER orders_funnel_del ON orders;
DROP TRIGGER orders_funnel_upd ON orders;
DROP TRIGGER orders_funnel_ins ON orders;
DROP FUNCTION funnel_dirty_days();
DROP INDEX orders_created_day_idx;
DROP TABLE funnel_dirty;
DROP TABLE funnel_days;
