-- +goose Up
-- GP online-services linkage (server/identity/gp): the sandbox stand-in for
-- the GP clinical systems' registration details. One linkage per patient per
-- practice; an account id is unique within its practice. The linkage key is
-- stored as given: the GP system shows it to the person, and the sandbox
-- plays that system. NHS numbers are the ten digits, ODS codes upper case.
CREATE TABLE gp_linkages (
    nhs_number  TEXT NOT NULL,
    ods_code    TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    linkage_key TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (nhs_number, ods_code),
    UNIQUE (ods_code, account_id)
);

-- +goose Down
DROP TABLE gp_linkages;
