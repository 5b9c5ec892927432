-- +goose Up
-- Issue 8: who the success page may sign in, and one free trial per mailbox.

-- The order whose payment (or free trial) created the account, recorded when it is created:
-- only that checkout's success page may sign its buyer in. Existing accounts take it from the
-- audit log's account.created event, written in the same transaction as the account.
ALTER TABLE accounts ADD COLUMN created_by_order_id uuid REFERENCES orders (id);
UPDATE accounts a SET created_by_order_id = (
    SELECT e.order_id FROM audit_events e
    WHERE e.account_id = a.id AND e.action = 'account.created' AND e.order_id IS NOT NULL
    ORDER BY e.id LIMIT 1);

-- A session opened by paying (GET /api/checkout/verify) is provisional: nobody has proven
-- they own the email yet, so it ends when the account is activated. A pending account's
-- existing sessions can only have come from there (sign-in links activate).
ALTER TABLE sessions ADD COLUMN via_checkout boolean NOT NULL DEFAULT false;
UPDATE sessions s SET via_checkout = true FROM accounts a WHERE a.id = s.account_id AND a.status = 'pending';

-- One free trial per mailbox (gpubroker.Mailbox: lower case, "+tag" dropped, and for Gmail
-- dots dropped and googlemail.com read as gmail.com); email keeps the address as typed.
-- Existing claims are re-keyed with the same rules; of several claims on one mailbox the
-- first stays (the orders themselves are untouched).
ALTER TABLE trial_claims ADD COLUMN mailbox text;
UPDATE trial_claims SET mailbox = CASE
    WHEN substring(email from '@([^@]*)$') IN ('gmail.com', 'googlemail.com')
        THEN replace(split_part(substring(email from '^(.*)@[^@]*$'), '+', 1), '.', '') || '@gmail.com'
    ELSE split_part(substring(email from '^(.*)@[^@]*$'), '+', 1) || '@' || substring(email from '@([^@]*)$')
END;
DELETE FROM trial_claims c USING trial_claims d
    WHERE c.mailbox = d.mailbox AND (d.created_at, d.order_id) < (c.created_at, c.order_id);
ALTER TABLE trial_claims DROP CONSTRAINT trial_claims_pkey;
ALTER TABLE trial_claims ALTER COLUMN mailbox SET NOT NULL;
ALTER TABLE trial_claims ADD PRIMARY KEY (mailbox);

-- +goose Down
ALTER TABLE trial_claims DROP CONSTRAINT trial_claims_pkey;
ALTER TABLE trial_claims ADD PRIMARY KEY (email);
ALTER TABLE trial_claims DROP COLUMN mailbox;
ALTER TABLE sessions DROP COLUMN via_checkout;
ALTER TABLE accounts DROP COLUMN created_by_order_id;
