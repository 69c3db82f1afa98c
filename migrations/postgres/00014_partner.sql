-- +goose Up
-- NHS login's partner APIs (server/partner).

-- Account provisioning: a partner (client_id, its organisation's ODS code)
-- asked for a P9 account for the patient PDS knows by nhs_number; the
-- patient claims it from the emailed link (HMAC of its token) before
-- expires_at. status: pending → claimed, or pending → expired (set when a
-- new request for the same patient finds it past expires_at; until then a
-- pending request past its expiry reads as expired). One pending request
-- per patient. account_id is the account that claimed it.
CREATE TABLE partner_provisionings (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    ods_code      TEXT NOT NULL,
    nhs_number    TEXT NOT NULL,
    given_name    TEXT NOT NULL,
    family_name   TEXT NOT NULL,
    birth_date    TEXT NOT NULL,
    mobile        TEXT NOT NULL,
    email         TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'expired')),
    account_id    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    claimed_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX partner_provisionings_one_pending ON partner_provisionings (nhs_number) WHERE status = 'pending';
CREATE INDEX partner_provisionings_client ON partner_provisionings (client_id, created_at);

-- +goose Down
DROP TABLE partner_provisionings;
