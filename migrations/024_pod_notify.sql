-- Issue 25, "pod readiness pushed, not polled": every change to what the pod JSON shows
-- (GET /api/pods/{id}) sends pg_notify('pod_changed', <pod id>) in the writer's own
-- transaction, so it is delivered at commit and never after a rollback. Each api process holds
-- one LISTEN connection (postgres.PodListener) and wakes the event streams of that pod, which
-- read it again.
--
-- What feeds the pod JSON (postgres.podSelect and api.podViews): the pod row; its order's
-- status, hold and prices; its payments, refunds and extensions (paid hours, refunds made and
-- due, open checkouts); its boot steps; and, for a pod waiting for Deploy, its account's status
-- (deploy_blocked). Time alone (seconds_left, an expired hold) notifies nothing.
--
-- Row triggers, one pg_notify per row change that shows; Postgres folds identical
-- notifications of one transaction into one. Rows nobody can watch are skipped: a pod with no
-- account yet (a checkout in progress), and updates of columns the JSON does not show (orders:
-- the reconciler's reconciled_at, cookies, session ids). A pod row that changes in any way
-- notifies (health counters change only on failures). A column added to the pod JSON from
-- orders, or another table feeding it, must be added here.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION notify_pod_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'pods' THEN
        PERFORM pg_notify('pod_changed', NEW.id::text);
    ELSIF TG_TABLE_NAME IN ('boot_steps', 'extensions') THEN
        PERFORM pg_notify('pod_changed', p.id::text) FROM pods p WHERE p.id = NEW.pod_id AND p.account_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'orders' THEN
        PERFORM pg_notify('pod_changed', p.id::text) FROM pods p WHERE p.order_id = NEW.id AND p.account_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'payments' THEN
        PERFORM pg_notify('pod_changed', p.id::text) FROM pods p WHERE p.order_id = NEW.order_id AND p.account_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'refunds' THEN
        -- The pod of the payment's order (refunded_cents sums the order's refunds; a refund's
        -- pod_id, read by refund_due_cents, is that same pod).
        PERFORM pg_notify('pod_changed', p.id::text) FROM payments y JOIN pods p ON p.order_id = y.order_id
            WHERE y.id = NEW.payment_id AND p.account_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'accounts' THEN
        -- Only a pod waiting for Deploy shows its account's status (deploy_blocked).
        PERFORM pg_notify('pod_changed', p.id::text) FROM pods p WHERE p.account_id = NEW.id AND p.status = 'configured';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER pods_notify AFTER UPDATE ON pods FOR EACH ROW
    WHEN (NEW.account_id IS NOT NULL AND OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER orders_notify AFTER UPDATE ON orders FOR EACH ROW
    WHEN ((OLD.status, OLD.hold_expires_at, OLD.plan, OLD.hourly_cents, OLD.amount_cents, OLD.currency)
        IS DISTINCT FROM (NEW.status, NEW.hold_expires_at, NEW.plan, NEW.hourly_cents, NEW.amount_cents, NEW.currency))
    EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER payments_notify AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER refunds_notify AFTER INSERT OR UPDATE ON refunds FOR EACH ROW EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER extensions_notify AFTER INSERT OR UPDATE ON extensions FOR EACH ROW EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER boot_steps_notify AFTER INSERT ON boot_steps FOR EACH ROW EXECUTE FUNCTION notify_pod_changed();
CREATE TRIGGER accounts_notify AFTER UPDATE ON accounts FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION notify_pod_changed();

-- +goose Down
DROP TRIGGER accounts_notify ON accounts;
DROP TRIGGER boot_steps_notify ON boot_steps;
DROP TRIGGER extensions_notify ON extensions;
DROP TRIGGER refunds_notify ON refunds;
DROP TRIGGER payments_notify ON payments;
DROP TRIGGER orders_notify ON orders;
DROP TRIGGER pods_notify ON pods;
DROP FUNCTION notify_pod_changed();
