-- +goose Up
-- Push approvals (push/): a login made in a browser, waiting for the
-- person's phone to approve it. One pending request per account at a time
-- (the partial unique index); the number is what the browser shows and the
-- person types on the phone; nonce is the server's secret half of the FIDO
-- challenge the phone signs. Rows are kept a day for the audit trail of
-- answers and deleted by Purge.
CREATE TABLE push_approvals (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    client_name  TEXT NOT NULL DEFAULT '',
    browser      TEXT NOT NULL DEFAULT '',
    os           TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    number       INTEGER NOT NULL CHECK (number BETWEEN 10 AND 99),
    nonce        BLOB NOT NULL,
    status       TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    answered_at  TIMESTAMP,
    answered_by  TEXT,
    consumed_at  TIMESTAMP
);
CREATE UNIQUE INDEX push_approvals_one_pending ON push_approvals (account_id) WHERE status = 'pending';
CREATE INDEX push_approvals_account_created ON push_approvals (account_id, created_at);
CREATE INDEX push_approvals_created ON push_approvals (created_at);

-- Accounts whose push approvals are paused ("this wasn't me"): until then
-- logins use the texted code.
CREATE TABLE push_pauses (
    account_id TEXT PRIMARY KEY,
    until      TIMESTAMP NOT NULL,
    reason     TEXT NOT NULL
);

-- +goose Down
DROP TABLE push_pauses;
DROP TABLE push_approvals;
