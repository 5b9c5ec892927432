-- +goose Up
-- Issue 25 item 8, deletion on request (DELETE /api/me, confirmed by an emailed link): an
-- account can be deleted, its row kept anonymised for the orders and ledger that point at it;
-- the link is a one-time token of its own purpose.
ALTER TABLE accounts DROP CONSTRAINT accounts_status_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_status_check CHECK (status IN ('pending', 'active', 'deleted'));
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check CHECK (purpose IN ('activation', 'login', 'deletion'));

-- One free trial per mailbox outlives the account: a deleted account's claim keeps only
-- 'sha256:' and the SHA-256 of its mailbox (postgres.DeleteAccount), and a new claim on a
-- mailbox whose hash was claimed is the same unique violation as a second plain claim.
-- +goose StatementBegin
CREATE FUNCTION trial_claims_deleted_mailbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM trial_claims
               WHERE mailbox = 'sha256:' || encode(sha256(convert_to(NEW.mailbox, 'UTF8')), 'hex')) THEN
        RAISE unique_violation USING MESSAGE = 'this mailbox has already claimed its free trial',
            CONSTRAINT = 'trial_claims_pkey';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER trial_claims_deleted_mailbox BEFORE INSERT ON trial_claims
    FOR EACH ROW EXECUTE FUNCTION trial_claims_deleted_mailbox();

-- +goose Down
DROP TRIGGER trial_claims_deleted_mailbox ON trial_claims;
DROP FUNCTION trial_claims_deleted_mailbox();
DELETE FROM tokens WHERE purpose = 'deletion';
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check CHECK (purpose IN ('activation', 'login'));
ALTER TABLE accounts DROP CONSTRAINT accounts_status_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_status_check CHECK (status IN ('pending', 'active'));
