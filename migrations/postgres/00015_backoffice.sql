-- +goose Up
-- The operators' back office (server/backoffice, issue 14): a member of
-- staff may hold several roles (admin, id_checker, support), one row each.
CREATE TABLE staff_roles (
    account_id TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'id_checker', 'support')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, role)
);
-- An admin used to review photo ID checks too: keep that by giving every
-- former admin both roles.
INSERT INTO staff_roles (account_id, role, created_at) SELECT account_id, role, created_at FROM staff;
INSERT INTO staff_roles (account_id, role, created_at)
    SELECT account_id, 'id_checker', created_at FROM staff WHERE role = 'admin';
DROP TABLE staff;

-- The audit search pages through events by time, optionally of one type.
CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_type_at ON audit_events (type, at);

-- +goose Down
DROP INDEX audit_events_type_at;
DROP INDEX audit_events_at;
CREATE TABLE staff (
    account_id TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('id_checker', 'admin')),
    created_at TIMESTAMPTZ NOT NULL
);
INSERT INTO staff (account_id, role, created_at)
    SELECT account_id, MIN(role), MIN(created_at) FROM staff_roles
    WHERE role IN ('admin', 'id_checker') GROUP BY account_id;
DROP TABLE staff_roles;
