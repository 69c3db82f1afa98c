-- +goose Up
-- Per-client choices where NHS login's documented behaviour and a
-- relying party's needs may differ (docs/relying-parties.md):
--   id_token_claims: 'nhs' puts only NHS login's ID token claims in the
--     ID token (scope claims come from /userinfo); 'all' adds every scope
--     claim, as idlink did before.
--   metadata_oaep_hash: the hash of RSA-OAEP for the generated
--     client_user_metadata; 'sha1' is what NHS login's examples decrypt.
ALTER TABLE oidc_clients ADD COLUMN id_token_claims TEXT NOT NULL DEFAULT 'nhs';
ALTER TABLE oidc_clients ADD COLUMN metadata_oaep_hash TEXT NOT NULL DEFAULT 'sha1';

-- +goose Down
ALTER TABLE oidc_clients DROP COLUMN metadata_oaep_hash;
ALTER TABLE oidc_clients DROP COLUMN id_token_claims;
