-- +goose Up
-- Accounts exist once their email address has been verified; a registration
-- that has not followed its link lives in signups and owns nothing.
CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    terms_version     TEXT NOT NULL,
    terms_accepted_at TIMESTAMP NOT NULL,
    email_verified_at TIMESTAMP NOT NULL,
    phone             TEXT,
    phone_verified_at TIMESTAMP,
    proofing_level    TEXT NOT NULL DEFAULT 'P0',
    status            TEXT NOT NULL DEFAULT 'active',
    failed_logins     INTEGER NOT NULL DEFAULT 0,
    locked_until      TIMESTAMP,
    password_changed_at TIMESTAMP NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX accounts_phone ON accounts (phone);

CREATE TABLE signups (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    terms_version     TEXT NOT NULL,
    terms_accepted_at TIMESTAMP NOT NULL,
    token_hash        TEXT NOT NULL UNIQUE,
    expires_at        TIMESTAMP NOT NULL,
    used_at           TIMESTAMP,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX signups_email ON signups (email);

CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE security_codes (
    id          TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    phone       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX security_codes_subject ON security_codes (purpose, subject);

CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start TIMESTAMP NOT NULL,
    count        INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    account_id   TEXT,
    data         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          TIMESTAMP NOT NULL,
    type        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    account_id  TEXT,
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_account ON audit_events (account_id, at);

CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMP NOT NULL,
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    link        TEXT NOT NULL DEFAULT '',
    code        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_created ON outbox (created_at);

-- +goose Down
DROP TABLE outbox;
DROP TABLE audit_events;
DROP TABLE sessions;
DROP TABLE rate_counters;
DROP TABLE security_codes;
DROP TABLE password_resets;
DROP TABLE signups;
DROP TABLE accounts;
