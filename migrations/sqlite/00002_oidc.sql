-- +goose Up
-- OpenID Connect provider state (server/oidc). Secrets are stored hashed
-- (codes, refresh tokens) or encrypted (signing keys); account ids are the
-- account capability's, referenced by value, not by foreign key.
-- Tables written on every token exchange are WITHOUT ROWID here (their text
-- primary key is the table itself, one B-tree fewer to write); the schema
-- is otherwise the PostgreSQL one.

-- Token signing keys. state: next (published, not yet signing), active
-- (signs), retired (published until retire_after). slot repeats state for
-- next and active keys and is NULL for retired ones: its UNIQUE constraint
-- allows at most one active and one next key, even when replicas race.
CREATE TABLE oidc_signing_keys (
    id           TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    slot         TEXT UNIQUE,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at   TIMESTAMP,
    retire_after TIMESTAMP,
    CHECK ((state = 'retired' AND slot IS NULL) OR (slot IS NOT NULL AND slot = state))
);

-- Registered relying parties. List columns hold JSON arrays of strings.
CREATE TABLE oidc_clients (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    redirect_uris   TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    vectors         TEXT NOT NULL,
    default_vectors TEXT NOT NULL,
    public_key_pem  TEXT NOT NULL DEFAULT '',
    auth_algs       TEXT NOT NULL,
    refresh_enabled BOOLEAN NOT NULL,
    is_public       BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

-- Stable opaque subject identifiers (the sub claim), one per account.
CREATE TABLE oidc_subjects (
    account_id TEXT PRIMARY KEY,
    subject    TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- One row per authorization: the code (stored as a keyed hash) and what
-- the login proved. Tokens issued from it carry the grant id; revoked_at
-- revokes every one of them (code replay, refresh-token reuse).
CREATE TABLE oidc_grants (
    id                    TEXT PRIMARY KEY,
    code_hash             TEXT NOT NULL UNIQUE,
    client_id             TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    account_id            TEXT NOT NULL,
    subject               TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    vot                   TEXT NOT NULL,
    vtr                   TEXT NOT NULL,
    credentials           TEXT NOT NULL,
    auth_time             TIMESTAMP NOT NULL,
    code_challenge        TEXT NOT NULL DEFAULT '',
    code_challenge_method TEXT NOT NULL DEFAULT '',
    code_expires_at       TIMESTAMP NOT NULL,
    code_used_at          TIMESTAMP,
    revoked_at            TIMESTAMP,
    created_at            TIMESTAMP NOT NULL,
    expires_at            TIMESTAMP NOT NULL
) WITHOUT ROWID;
CREATE INDEX oidc_grants_client ON oidc_grants (client_id);
CREATE INDEX oidc_grants_account ON oidc_grants (account_id);
CREATE INDEX oidc_grants_expires ON oidc_grants (expires_at);

-- Refresh tokens (keyed hashes). used_at is set when a token is rotated;
-- presenting a used token again revokes its grant (the whole family).
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
) WITHOUT ROWID;
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens (grant_id);

-- ID tokens issued, so that asserted_login_identity can name one by jti.
CREATE TABLE oidc_id_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
) WITHOUT ROWID;
CREATE INDEX oidc_id_tokens_expires ON oidc_id_tokens (expires_at);

-- Single-use JWT identifiers (client assertions, asserted_login_identity),
-- kept until the JWT they came from expires.
CREATE TABLE oidc_jtis (
    kind       TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, client_id, jti)
) WITHOUT ROWID;
CREATE INDEX oidc_jtis_expires ON oidc_jtis (expires_at);

-- client_user_metadata per (account, client). An empty value means the
-- client cleared it; no row means the default has not been generated yet.
CREATE TABLE oidc_client_metadata (
    account_id TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    value      TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

-- +goose Down
DROP TABLE oidc_client_metadata;
DROP TABLE oidc_jtis;
DROP TABLE oidc_id_tokens;
DROP TABLE oidc_refresh_tokens;
DROP TABLE oidc_grants;
DROP TABLE oidc_subjects;
DROP TABLE oidc_clients;
DROP TABLE oidc_signing_keys;
