-- +goose Up
-- The companion-app device whose credential made the login a grant came
-- from (fido_auth_response), so that removing the device revokes what it
-- holds: the grants of relying parties it logged in to.
ALTER TABLE oidc_grants ADD COLUMN device_id TEXT;
CREATE INDEX oidc_grants_device ON oidc_grants (device_id);

-- +goose Down
DROP INDEX oidc_grants_device;
ALTER TABLE oidc_grants DROP COLUMN device_id;
