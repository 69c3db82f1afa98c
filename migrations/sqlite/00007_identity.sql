-- +goose Up
-- Identity proofing (server/identity). The proofing level itself stays on
-- the account (accounts.proofing_level); these tables hold what proved it.

-- What PDS says about a proven person, stored only as PDS returned it after
-- a match. One account per NHS number. gp_* hold the GP online-services
-- registration details released at P9 (the person's own, or those looked up
-- or created for them after a photo ID check). check_pending marks a
-- per-login PDS check that could not run and is to be retried.
CREATE TABLE identity_records (
    account_id        TEXT PRIMARY KEY,
    nhs_number        TEXT NOT NULL UNIQUE,
    route             TEXT NOT NULL,
    given_name        TEXT NOT NULL DEFAULT '',
    family_name       TEXT NOT NULL DEFAULT '',
    birth_date        TEXT NOT NULL DEFAULT '',
    gender            TEXT NOT NULL DEFAULT '',
    postcode          TEXT NOT NULL DEFAULT '',
    gp_ods_code       TEXT NOT NULL DEFAULT '',
    gp_account_id     TEXT NOT NULL DEFAULT '',
    gp_linkage_key    TEXT NOT NULL DEFAULT '',
    gp_linkage_ods    TEXT NOT NULL DEFAULT '',
    phone_pds_matched BOOLEAN NOT NULL DEFAULT FALSE,
    restricted        BOOLEAN NOT NULL DEFAULT FALSE,
    pds_version       TEXT NOT NULL DEFAULT '',
    checked_at        TIMESTAMP NOT NULL,
    check_pending     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX identity_records_pending ON identity_records (check_pending);

-- Photo ID checks: the evidence (media ids in server/identity/media), the
-- queue state and the reviewer's decision. One open check per account.
CREATE TABLE identity_checks (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    document_type  TEXT NOT NULL,
    photo_id       TEXT NOT NULL,
    photo_type     TEXT NOT NULL,
    video_id       TEXT NOT NULL,
    video_type     TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('submitted', 'in_review', 'approved', 'rejected')),
    submitted_at   TIMESTAMP NOT NULL,
    claimed_by     TEXT,
    claimed_at     TIMESTAMP,
    id_valid       BOOLEAN,
    face_match     BOOLEAN,
    nhs_number     TEXT,
    reason         TEXT NOT NULL DEFAULT '',
    decided_by     TEXT,
    decided_at     TIMESTAMP,
    media_deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX identity_checks_one_open ON identity_checks (account_id) WHERE status IN ('submitted', 'in_review');
CREATE INDEX identity_checks_queue ON identity_checks (status, submitted_at);

-- Staff of the back office (/admin): accounts with a role.
CREATE TABLE staff (
    account_id TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('id_checker', 'admin')),
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE staff;
DROP TABLE identity_checks;
DROP TABLE identity_records;
