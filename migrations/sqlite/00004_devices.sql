-- +goose Up
-- Registered devices (device/) and WebAuthn credentials (fido/). Account ids
-- are the account capability's, referenced by value, not by foreign key.
-- Secrets are stored as keyed hashes (remembered-browser tokens); public keys
-- and credential ids are not secrets.
-- device_jtis is WITHOUT ROWID here (written on every app API call, its
-- primary key is the table); the schema is otherwise the PostgreSQL one.

-- Remembered browsers: a long-lived cookie token, stored as a keyed hash and
-- bound to one account. Forgotten after an idle lifetime without use.
CREATE TABLE remembered_browsers (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL
);
CREATE INDEX remembered_browsers_account ON remembered_browsers (account_id);
CREATE INDEX remembered_browsers_last_used ON remembered_browsers (last_used_at);

-- Companion-app devices. public_key is the device key (P-256, SPKI DER) that
-- signs the app's API request JWTs. A removed device keeps its row (removed_at
-- set) and is refused everywhere.
CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    name               TEXT NOT NULL,
    platform           TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'other')),
    public_key         BLOB NOT NULL,
    fido_credential_id BLOB UNIQUE,
    push_token         TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMP NOT NULL,
    last_seen_at       TIMESTAMP NOT NULL,
    removed_at         TIMESTAMP
);
CREATE INDEX devices_account ON devices (account_id);

-- Single-use JWT ids of device-signed API requests, kept until the JWT
-- they came from expires.
CREATE TABLE device_jtis (
    device_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device_id, jti)
) WITHOUT ROWID;
CREATE INDEX device_jtis_expires ON device_jtis (expires_at);

-- WebAuthn user handles: one stable random handle per account, so that the
-- account id itself never reaches an authenticator.
CREATE TABLE fido_user_handles (
    account_id TEXT PRIMARY KEY,
    handle     BLOB NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- WebAuthn credentials. kind: passkey (added from settings) or app (the
-- companion app's platform authenticator, device_id names the device).
-- public_key is the COSE key; aaguid is 16 bytes; transports is a JSON array
-- of strings; sign_count, clone_warning and the backup flags are updated
-- after every use; blocked_at is set when a counter goes backwards.
CREATE TABLE fido_credentials (
    id                 BLOB PRIMARY KEY,
    account_id         TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('passkey', 'app')),
    device_id          TEXT,
    name               TEXT NOT NULL,
    public_key         BLOB NOT NULL,
    attestation_type   TEXT NOT NULL,
    attestation_format TEXT NOT NULL,
    aaguid             BLOB NOT NULL,
    sign_count         BIGINT NOT NULL,
    clone_warning      BOOLEAN NOT NULL,
    backup_eligible    BOOLEAN NOT NULL,
    backup_state       BOOLEAN NOT NULL,
    transports         TEXT NOT NULL,
    user_verified      BOOLEAN NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    last_used_at       TIMESTAMP,
    blocked_at         TIMESTAMP
);
CREATE INDEX fido_credentials_account ON fido_credentials (account_id);
CREATE INDEX fido_credentials_device ON fido_credentials (device_id);

-- WebAuthn ceremony state between begin and finish: single use (taken with
-- DELETE ... RETURNING) and valid until expires_at. kind: registration,
-- login (bound to account_id) or discoverable (no account yet).
-- credential_kind is the kind of credential a registration creates.
-- session is go-webauthn's SessionData as JSON.
CREATE TABLE fido_ceremonies (
    id              TEXT PRIMARY KEY,
    challenge       TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('registration', 'login', 'discoverable')),
    credential_kind TEXT NOT NULL DEFAULT '',
    account_id      TEXT,
    session         TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL
);
CREATE INDEX fido_ceremonies_expires ON fido_ceremonies (expires_at);

-- +goose Down
DROP TABLE fido_ceremonies;
DROP TABLE fido_credentials;
DROP TABLE fido_user_handles;
DROP TABLE device_jtis;
DROP TABLE devices;
DROP TABLE remembered_browsers;
