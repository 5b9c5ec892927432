-- +goose Up
-- The plan's max_hours bounds a pod's total (order hours + paid extensions). Two extension
-- checkouts opened before either is paid can both be paid; the one whose payment would take the
-- total past the limit extends nothing: it becomes over_limit (paid, and never counted as hours)
-- and its payment is refunded in full (refund reason over_limit), planned and queued in the
-- transaction that records the payment.
ALTER TABLE extensions DROP CONSTRAINT extensions_status_check;
ALTER TABLE extensions ADD CONSTRAINT extensions_status_check
    CHECK (status IN ('checkout_pending', 'paid', 'expired', 'over_limit'));
ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_reason_check
    CHECK (reason IN ('early_stop', 'pod_died', 'not_started', 'late_extension', 'over_limit'));

-- +goose Down
-- Refused extensions were paid and refunded in full, which is what a late extension records.
UPDATE refunds SET reason = 'late_extension' WHERE reason = 'over_limit';
UPDATE extensions SET status = 'paid' WHERE status = 'over_limit';
ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_reason_check
    CHECK (reason IN ('early_stop', 'pod_died', 'not_started', 'late_extension'));
ALTER TABLE extensions DROP CONSTRAINT extensions_status_check;
ALTER TABLE extensions ADD CONSTRAINT extensions_status_check
    CHECK (status IN ('checkout_pending', 'paid', 'expired'));
