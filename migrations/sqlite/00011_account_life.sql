-- +goose Up
-- The account's own life (server/account, server/closure): changing the
-- email address and the mobile number, the optional landline, and closing
-- accounts that have not been used for two years.

-- The landline is given by the person and never verified (no call can be
-- made from here); it is released through the landline scope.
ALTER TABLE accounts ADD COLUMN landline TEXT;
-- When the account last completed a login (NULL: not since this column was
-- added, the account's creation then counts), and when the person was
-- warned that it will be closed for lack of use.
ALTER TABLE accounts ADD COLUMN last_login_at TIMESTAMP;
ALTER TABLE accounts ADD COLUMN closure_warned_at TIMESTAMP;
CREATE INDEX accounts_last_login ON accounts (last_login_at);

-- A new email address waiting for its link (HMAC of the token) to be
-- followed; nothing changes on the account until it is.
CREATE TABLE email_changes (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    new_email  TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX email_changes_account ON email_changes (account_id);

-- A change of mobile number, with the link (HMAC) sent to the old number
-- that undoes it for 24 hours.
CREATE TABLE phone_changes (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    old_phone         TEXT NOT NULL,
    new_phone         TEXT NOT NULL,
    cancel_token_hash TEXT NOT NULL UNIQUE,
    expires_at        TIMESTAMP NOT NULL,
    cancelled_at      TIMESTAMP,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX phone_changes_account ON phone_changes (account_id);

-- Leases of periodic jobs: the replica that holds an unexpired lease runs
-- the job, the others skip it.
CREATE TABLE job_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE job_leases;
DROP TABLE phone_changes;
DROP TABLE email_changes;
DROP INDEX accounts_last_login;
ALTER TABLE accounts DROP COLUMN closure_warned_at;
ALTER TABLE accounts DROP COLUMN last_login_at;
ALTER TABLE accounts DROP COLUMN landline;
