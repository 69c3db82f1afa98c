package oidc

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
)

// store holds every SQL statement of the provider, over the tables it owns
// (oidc_signing_keys, oidc_clients, oidc_subjects, oidc_grants,
// oidc_refresh_tokens, oidc_id_tokens, oidc_jtis, oidc_client_metadata,
// oidc_consents). The rest of the package decides; store only reads and
// writes. Methods that take a *sqlx.Tx run inside it. A row that is not
// there is reported as an error for which migrations.IsNoRows holds,
// unless the method says otherwise. It is safe for concurrent use.
type store struct {
	db    *sqlx.DB
	stmts *stmtCache
}

// newStore returns a store over db with its own statement cache.
func newStore(db *sqlx.DB) *store {
	return &store{db: db, stmts: &stmtCache{db: db}}
}

// close releases the prepared statements (the handle stays open).
func (st *store) close() error { return st.stmts.close() }

// begin starts a transaction after preparing the statements it will use
// (preparing through the pool while holding a transaction could deadlock;
// see stmtCache).
func (st *store) begin(ctx context.Context, warm ...string) (*sqlx.Tx, error) {
	if err := st.stmts.warm(ctx, warm...); err != nil {
		return nil, err
	}
	tx, err := st.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return tx, nil
}

// prepared returns query prepared, bound to tx when tx is not nil.
func (st *store) prepared(ctx context.Context, tx *sqlx.Tx, query string) (*sqlx.Stmt, error) {
	if tx != nil {
		return st.stmts.inTx(ctx, tx, query)
	}
	return st.stmts.get(ctx, query)
}

// ---- single-use JWT ids -------------------------------------------------

// qUseJTI records a jti unless an unexpired record exists.
const qUseJTI = `INSERT INTO oidc_jtis (kind, client_id, jti, expires_at)
	VALUES (?, ?, ?, ?)
	ON CONFLICT (kind, client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
	WHERE oidc_jtis.expires_at < ?
	RETURNING jti`

// useJTI records a JWT id as used until until, within tx (or on its own
// when tx is nil). It reports false when an unexpired record exists (at
// now): a replay. An expired record is reused in place.
func (st *store) useJTI(ctx context.Context, tx *sqlx.Tx, kind, clientID, jti string, until, now time.Time) (bool, error) {
	stmt, err := st.prepared(ctx, tx, qUseJTI)
	if err != nil {
		return false, err
	}
	var got string
	err = stmt.GetContext(ctx, &got, kind, clientID, jti, until, now)
	if err == nil {
		return true, nil
	}
	if migrations.IsNoRows(err) {
		return false, nil
	}
	return false, fmt.Errorf("record jti: %w", err)
}

// ---- subjects -------------------------------------------------------------

// subject returns the account's subject identifier, storing fresh as the
// subject when the account has none yet (the first writer wins).
func (st *store) subject(ctx context.Context, accountID, fresh string, now time.Time) (string, error) {
	q := st.db.Rebind(`SELECT subject FROM oidc_subjects WHERE account_id = ?`)
	var sub string
	err := st.db.GetContext(ctx, &sub, q, accountID)
	if err == nil {
		return sub, nil
	}
	if !migrations.IsNoRows(err) {
		return "", fmt.Errorf("look up subject: %w", err)
	}
	if _, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO oidc_subjects (account_id, subject, created_at)
		VALUES (?, ?, ?) ON CONFLICT (account_id) DO NOTHING`), accountID, fresh, now); err != nil {
		return "", fmt.Errorf("create subject: %w", err)
	}
	if err := st.db.GetContext(ctx, &sub, q, accountID); err != nil {
		return "", fmt.Errorf("look up subject: %w", err)
	}
	return sub, nil
}

// ---- clients --------------------------------------------------------------

const clientColumns = `id, name, redirect_uris, scopes, vectors, default_vectors, public_key_pem, auth_algs,
	refresh_enabled, is_public, id_token_claims, metadata_oaep_hash, created_at, updated_at`

// insertClient stores a new client row; a taken id is a unique violation
// (migrations.IsUniqueViolation).
func (st *store) insertClient(ctx context.Context, row *clientRow) error {
	_, err := st.db.NamedExecContext(ctx, `INSERT INTO oidc_clients (`+clientColumns+`) VALUES
		(:id, :name, :redirect_uris, :scopes, :vectors, :default_vectors, :public_key_pem, :auth_algs,
		 :refresh_enabled, :is_public, :id_token_claims, :metadata_oaep_hash, :created_at, :updated_at)`, row)
	return err
}

// clientRow reads one client's row (prepared once: every token request
// reads it).
func (st *store) clientRow(ctx context.Context, id string) (clientRow, error) {
	stmt, err := st.stmts.get(ctx, `SELECT `+clientColumns+` FROM oidc_clients WHERE id = ?`)
	if err != nil {
		return clientRow{}, err
	}
	var row clientRow
	err = stmt.GetContext(ctx, &row, id)
	return row, err
}

// clientRows reads every client, oldest first.
func (st *store) clientRows(ctx context.Context) ([]clientRow, error) {
	var rows []clientRow
	err := st.db.SelectContext(ctx, &rows, `SELECT `+clientColumns+` FROM oidc_clients ORDER BY created_at, id`)
	return rows, err
}

// updateClient replaces everything but the creation time of the client
// row.ID and returns its creation time.
func (st *store) updateClient(ctx context.Context, row *clientRow) (time.Time, error) {
	var created time.Time
	err := st.db.GetContext(ctx, &created, st.db.Rebind(`UPDATE oidc_clients SET name = ?, redirect_uris = ?, scopes = ?,
		vectors = ?, default_vectors = ?, public_key_pem = ?, auth_algs = ?, refresh_enabled = ?, is_public = ?,
		id_token_claims = ?, metadata_oaep_hash = ?, updated_at = ?
		WHERE id = ? RETURNING created_at`),
		row.Name, row.RedirectURIs, row.Scopes, row.Vectors, row.DefaultVectors, row.PublicKeyPEM, row.AuthAlgs,
		row.RefreshEnabled, row.IsPublic, row.IDTokenClaims, row.MetadataOAEPHash, row.UpdatedAt, row.ID)
	return created, err
}

// deleteClient deletes a client (its grants, tokens and metadata go with
// it by foreign key) and reports whether it existed.
func (st *store) deleteClient(ctx context.Context, id string) (bool, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM oidc_clients WHERE id = ?`), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// ---- grants (codes) -------------------------------------------------------

const grantColumns = `id, code_hash, client_id, account_id, subject, redirect_uri, scopes, nonce, vot, vtr, credentials,
	auth_time, code_challenge, code_challenge_method, code_expires_at, code_used_at, revoked_at, created_at, expires_at, device_id`

// insertGrant stores a new grant with its code's hash.
func (st *store) insertGrant(ctx context.Context, g *grantRow) error {
	_, err := st.db.NamedExecContext(ctx, `INSERT INTO oidc_grants (`+grantColumns+`) VALUES
		(:id, :code_hash, :client_id, :account_id, :subject, :redirect_uri, :scopes, :nonce, :vot, :vtr, :credentials,
		 :auth_time, :code_challenge, :code_challenge_method, :code_expires_at, :code_used_at, :revoked_at, :created_at, :expires_at, :device_id)`, g)
	return err
}

// qRedeemCode uses up an unexpired, unused code of a client.
const qRedeemCode = `UPDATE oidc_grants SET code_used_at = ?
	WHERE code_hash = ? AND client_id = ? AND code_used_at IS NULL AND revoked_at IS NULL AND code_expires_at > ?
	RETURNING id, client_id, account_id, subject, redirect_uri, scopes, nonce, vot, auth_time, code_challenge, expires_at`

// redeemCode uses up client's code (by its keyed hash) within tx and
// returns the columns a token response needs; nil when the code cannot be
// redeemed (unknown, expired, used, revoked or another client's).
func (st *store) redeemCode(ctx context.Context, tx *sqlx.Tx, clientID, hash string, now time.Time) (*grantRow, error) {
	stmt, err := st.stmts.inTx(ctx, tx, qRedeemCode)
	if err != nil {
		return nil, err
	}
	var g grantRow
	err = stmt.GetContext(ctx, &g, now, hash, clientID, now)
	if migrations.IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redeem code: %w", err)
	}
	return &g, nil
}

// grantByCodeHash reads the grant of a code, in whatever state.
func (st *store) grantByCodeHash(ctx context.Context, hash string) (grantRow, error) {
	var g grantRow
	err := st.db.GetContext(ctx, &g, st.db.Rebind(`SELECT `+grantColumns+` FROM oidc_grants WHERE code_hash = ?`), hash)
	return g, err
}

// grantByID reads a grant, within tx when tx is not nil.
func (st *store) grantByID(ctx context.Context, tx *sqlx.Tx, id string) (grantRow, error) {
	var q sqlx.QueryerContext = st.db
	if tx != nil {
		q = tx
	}
	var g grantRow
	err := sqlx.GetContext(ctx, q, &g, st.db.Rebind(`SELECT `+grantColumns+` FROM oidc_grants WHERE id = ?`), id)
	return g, err
}

// extendGrant makes a grant live until at least until, within tx.
func (st *store) extendGrant(ctx context.Context, tx *sqlx.Tx, id string, until time.Time) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE oidc_grants SET expires_at = ? WHERE id = ? AND expires_at < ?`), until, id, until)
	return err
}

// revokeGrant marks a grant revoked at now (once).
func (st *store) revokeGrant(ctx context.Context, id string, now time.Time) error {
	_, err := st.db.ExecContext(ctx, st.db.Rebind(`UPDATE oidc_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), now, id)
	return err
}

// revokeDevice revokes the live grants of logins made with a device.
func (st *store) revokeDevice(ctx context.Context, deviceID string, now time.Time) (int64, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`UPDATE oidc_grants SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL`), now, deviceID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// revokeGrantByID revokes one live grant.
func (st *store) revokeGrantByID(ctx context.Context, grantID string, now time.Time) (sql.Result, error) {
	return st.db.ExecContext(ctx, st.db.Rebind(`UPDATE oidc_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), now, grantID)
}

// revokeAccount marks every live grant of an account revoked and returns
// how many it changed.
func (st *store) revokeAccount(ctx context.Context, accountID string, now time.Time) (int64, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`UPDATE oidc_grants SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL`), now, accountID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ---- refresh tokens and ID tokens ----------------------------------------

// Statements of the token endpoint's transactions (prepared once).
const (
	qInsertRefresh = `INSERT INTO oidc_refresh_tokens (token_hash, grant_id, client_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`
	qInsertIDToken = `INSERT INTO oidc_id_tokens (jti, grant_id, client_id, account_id, expires_at)
		VALUES (?, ?, ?, ?, ?)`
	qUseRefresh = `UPDATE oidc_refresh_tokens SET used_at = ?
		WHERE token_hash = ? AND client_id = ? AND used_at IS NULL AND expires_at > ?
		RETURNING grant_id`
)

// insertRefresh stores a refresh token's keyed hash within tx.
func (st *store) insertRefresh(ctx context.Context, tx *sqlx.Tx, hash, grantID, clientID string, now, expires time.Time) error {
	stmt, err := st.stmts.inTx(ctx, tx, qInsertRefresh)
	if err != nil {
		return err
	}
	_, err = stmt.ExecContext(ctx, hash, grantID, clientID, now, expires)
	return err
}

// insertIDToken records an issued ID token's jti within tx.
func (st *store) insertIDToken(ctx context.Context, tx *sqlx.Tx, jti, grantID, clientID, accountID string, expires time.Time) error {
	stmt, err := st.stmts.inTx(ctx, tx, qInsertIDToken)
	if err != nil {
		return err
	}
	_, err = stmt.ExecContext(ctx, jti, grantID, clientID, accountID, expires)
	return err
}

// useRefresh uses up client's unexpired, unused refresh token within tx
// and returns its grant id (a no-rows error when it cannot be used).
func (st *store) useRefresh(ctx context.Context, tx *sqlx.Tx, hash, clientID string, now time.Time) (string, error) {
	stmt, err := st.stmts.inTx(ctx, tx, qUseRefresh)
	if err != nil {
		return "", err
	}
	var grantID string
	err = stmt.GetContext(ctx, &grantID, now, hash, clientID, now)
	return grantID, err
}

// refreshRow is a refresh token with the account of its grant.
type refreshRow struct {
	GrantID   string     `db:"grant_id"`
	ClientID  string     `db:"client_id"`
	AccountID string     `db:"account_id"`
	ExpiresAt time.Time  `db:"expires_at"`
	UsedAt    *time.Time `db:"used_at"`
}

// refreshByHash reads a refresh token, in whatever state.
func (st *store) refreshByHash(ctx context.Context, hash string) (refreshRow, error) {
	var row refreshRow
	err := st.db.GetContext(ctx, &row, st.db.Rebind(`SELECT r.grant_id, r.client_id, g.account_id, r.expires_at, r.used_at
		FROM oidc_refresh_tokens r JOIN oidc_grants g ON g.id = r.grant_id WHERE r.token_hash = ?`), hash)
	return row, err
}

// idTokenRow is an issued ID token with the login of its grant.
type idTokenRow struct {
	AccountID   string     `db:"account_id"`
	ExpiresAt   time.Time  `db:"expires_at"`
	VoT         string     `db:"vot"`
	Credentials string     `db:"credentials"`
	AuthTime    time.Time  `db:"auth_time"`
	RevokedAt   *time.Time `db:"revoked_at"`
}

// idToken reads the ID token jti issued to clientID.
func (st *store) idToken(ctx context.Context, jti, clientID string) (idTokenRow, error) {
	var row idTokenRow
	err := st.db.GetContext(ctx, &row, st.db.Rebind(`SELECT t.account_id, t.expires_at, g.vot, g.credentials, g.auth_time, g.revoked_at
		FROM oidc_id_tokens t JOIN oidc_grants g ON g.id = t.grant_id
		WHERE t.jti = ? AND t.client_id = ?`), jti, clientID)
	return row, err
}

// ---- consent --------------------------------------------------------------

// consent returns the scopes a person agreed to share with a client, and
// whether they ever agreed to anything (a row exists).
func (st *store) consent(ctx context.Context, accountID, clientID string) ([]string, bool, error) {
	var scopes string
	err := st.db.GetContext(ctx, &scopes, st.db.Rebind(`SELECT scopes FROM oidc_consents WHERE account_id = ? AND client_id = ?`), accountID, clientID)
	if migrations.IsNoRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read consent: %w", err)
	}
	return strings.Fields(scopes), true, nil
}

// setConsent replaces the scopes a person agreed to share with a client.
func (st *store) setConsent(ctx context.Context, accountID, clientID string, scopes []string, now time.Time) error {
	_, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO oidc_consents (account_id, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`),
		accountID, clientID, strings.Join(scopes, " "), now)
	if err != nil {
		return fmt.Errorf("record consent: %w", err)
	}
	return nil
}

// ---- client_user_metadata ------------------------------------------------

// clientMetadata reads a person's client_user_metadata for a client.
func (st *store) clientMetadata(ctx context.Context, accountID, clientID string) (string, error) {
	var v string
	err := st.db.GetContext(ctx, &v, st.db.Rebind(`SELECT value FROM oidc_client_metadata WHERE account_id = ? AND client_id = ?`), accountID, clientID)
	return v, err
}

// addClientMetadata stores value unless the person already has one for
// the client.
func (st *store) addClientMetadata(ctx context.Context, accountID, clientID, value string, now time.Time) error {
	_, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO oidc_client_metadata (account_id, client_id, value, updated_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (account_id, client_id) DO NOTHING`), accountID, clientID, value, now)
	return err
}

// setClientMetadata stores value, replacing any earlier one.
func (st *store) setClientMetadata(ctx context.Context, accountID, clientID, value string, now time.Time) error {
	_, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO oidc_client_metadata (account_id, client_id, value, updated_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (account_id, client_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
		accountID, clientID, value, now)
	return err
}

// ---- signing keys ---------------------------------------------------------

// keySlotTaken reports whether a key fills the slot.
func (st *store) keySlotTaken(ctx context.Context, slot KeyState) (bool, error) {
	var n int
	err := st.db.GetContext(ctx, &n, st.db.Rebind(`SELECT COUNT(*) FROM oidc_signing_keys WHERE slot = ?`), string(slot))
	return n > 0, err
}

// insertKeyInSlot stores a sealed key in slot (state = slot) unless the
// slot is taken, and reports whether it inserted.
func (st *store) insertKeyInSlot(ctx context.Context, id string, slot KeyState, alg string, sealed []byte, now time.Time, activated *time.Time) (bool, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO oidc_signing_keys
		(id, state, slot, algorithm, private_key, created_at, activated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slot) DO NOTHING`),
		id, string(slot), string(slot), alg, sealed, now, activated)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// keyRows reads every stored key: active first, then next, then retired
// keys newest first.
func (st *store) keyRows(ctx context.Context) ([]keyRow, error) {
	var rows []keyRow
	err := st.db.SelectContext(ctx, &rows, `SELECT id, state, algorithm, private_key, created_at, activated_at, retired_at, retire_after
		FROM oidc_signing_keys
		ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC, id`)
	return rows, err
}

// rotateKeys, in one transaction: retires activeID (when not empty) until
// retireAfter, activates nextID, stores the sealed new next key, and drops
// retired keys past their time. A step that finds another process got
// there first gives ErrConcurrentRotation.
func (st *store) rotateKeys(ctx context.Context, activeID, nextID, newID, alg string, sealed []byte, now, retireAfter time.Time) error {
	tx, err := st.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if activeID != "" {
		if err := execOne(ctx, tx, `UPDATE oidc_signing_keys SET state = 'retired', slot = NULL, retired_at = ?, retire_after = ?
			WHERE id = ? AND slot = 'active'`, now, retireAfter, activeID); err != nil {
			return fmt.Errorf("retire key %s: %w", activeID, err)
		}
	}
	if err := execOne(ctx, tx, `UPDATE oidc_signing_keys SET state = 'active', slot = 'active', activated_at = ?
		WHERE id = ? AND slot = 'next'`, now, nextID); err != nil {
		return fmt.Errorf("activate key %s: %w", nextID, err)
	}
	if err := execOne(ctx, tx, `INSERT INTO oidc_signing_keys (id, state, slot, algorithm, private_key, created_at)
		VALUES (?, 'next', 'next', ?, ?, ?)`, newID, alg, sealed, now); err != nil {
		return fmt.Errorf("store next key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM oidc_signing_keys WHERE state = 'retired' AND retire_after <= ?`), now); err != nil {
		return fmt.Errorf("drop expired keys: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	return nil
}

// execOne runs a statement that must change exactly one row; a statement
// that changes none means another process got there first.
func execOne(ctx context.Context, tx *sqlx.Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, tx.Rebind(query), args...)
	if err != nil {
		if migrations.IsUniqueViolation(err) {
			return ErrConcurrentRotation
		}
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrConcurrentRotation
	}
	return nil
}

// ---- housekeeping ---------------------------------------------------------

// purge deletes what expired before now.
func (st *store) purge(ctx context.Context, now time.Time) error {
	for _, q := range []string{
		`DELETE FROM oidc_jtis WHERE expires_at < ?`,
		`DELETE FROM oidc_refresh_tokens WHERE expires_at < ?`,
		`DELETE FROM oidc_id_tokens WHERE expires_at < ?`,
		`DELETE FROM oidc_grants WHERE expires_at < ?`,
	} {
		if _, err := st.db.ExecContext(ctx, st.db.Rebind(q), now); err != nil {
			return fmt.Errorf("purge expired OIDC state: %w", err)
		}
	}
	return nil
}

// forgetAccount deletes, in one transaction, the account's grants (with
// their tokens), client metadata and subject.
func (st *store) forgetAccount(ctx context.Context, accountID string) error {
	tx, err := st.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget account: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, q := range []string{
		`DELETE FROM oidc_grants WHERE account_id = ?`,
		`DELETE FROM oidc_client_metadata WHERE account_id = ?`,
		`DELETE FROM oidc_subjects WHERE account_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), accountID); err != nil {
			return fmt.Errorf("forget account: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forget account: %w", err)
	}
	return nil
}
