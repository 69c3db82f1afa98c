package oidc

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/secrets"
)

// kidOf signs a token and returns the kid of its header.
func kidOf(t *testing.T, k *Keys) string {
	t.Helper()
	raw, err := k.sign(context.Background(), []byte(`{"x":1}`))
	require.NoError(t, err)
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS512})
	require.NoError(t, err)
	h := jws.Signatures[0].Header
	require.Equal(t, "JWT", h.ExtraHeaders[jose.HeaderType])
	require.Equal(t, "RS512", h.Algorithm)
	return h.KeyID
}

func jwks(t *testing.T, e *env) jose.JSONWebKeySet {
	t.Helper()
	resp := e.do(httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	return set
}

func TestEnsureKeysConcurrentReplicas(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		// Start again from no keys, with three replicas booting at once.
		_, err := db.Exec(`DELETE FROM oidc_signing_keys`)
		require.NoError(t, err)
		replicas := []*Server{e.replica(), e.replica(), e.replica()}
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for i, r := range replicas {
			wg.Go(func() { errs[i] = r.Keys().EnsureKeys(context.Background()) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys WHERE state = 'active'`))
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys WHERE state = 'next'`))
		kid := kidOf(t, replicas[0].Keys())
		for _, r := range replicas[1:] {
			require.Equal(t, kid, kidOf(t, r.Keys()), "every replica signs with the one active key")
		}
		// EnsureKeys again changes nothing.
		require.NoError(t, replicas[0].Keys().EnsureKeys(context.Background()))
		require.Equal(t, 2, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys`))
	})
}

func TestSecondActiveKeyRefusedByConstraint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		_ = newEnv(t, db)
		_, err := db.Exec(db.Rebind(`INSERT INTO oidc_signing_keys (id, state, slot, algorithm, private_key, created_at)
			VALUES ('x', 'active', 'active', 'RS512', ?, ?)`), []byte{1}, time.Now().UTC())
		require.Error(t, err)
		_, err = db.Exec(db.Rebind(`INSERT INTO oidc_signing_keys (id, state, slot, algorithm, private_key, created_at)
			VALUES ('y', 'active', NULL, 'RS512', ?, ?)`), []byte{1}, time.Now().UTC())
		require.Error(t, err, "an active key must hold the active slot")
	})
}

func TestJWKSPublishesNextAndActive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		set := jwks(t, e)
		require.Len(t, set.Keys, 2)
		infos, err := e.srv.Keys().List(context.Background())
		require.NoError(t, err)
		require.Len(t, infos, 2)
		require.Equal(t, KeyActive, infos[0].State)
		require.Equal(t, KeyNext, infos[1].State)
		for i, k := range set.Keys {
			require.Equal(t, infos[i].ID, k.KeyID)
			require.Equal(t, "sig", k.Use)
			require.Equal(t, "RS512", k.Algorithm)
			require.True(t, k.IsPublic(), "JWKS must not leak private keys")
			require.True(t, infos[i].Published)
		}
		raw, _ := json.Marshal(set)
		require.NotContains(t, string(raw), `"d":`)
		require.Equal(t, infos[0].ID, kidOf(t, e.srv.Keys()), "the active key signs, the next one does not")
	})
}

func TestSigningKeysEncryptedAtRest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		var sealed [][]byte
		require.NoError(t, db.Select(&sealed, `SELECT private_key FROM oidc_signing_keys`))
		require.Len(t, sealed, 2)
		for _, s := range sealed {
			for _, name := range []string{"sign1", "sign2"} {
				der, err := x509.MarshalPKCS8PrivateKey(testKey(t, name))
				require.NoError(t, err)
				require.False(t, bytes.Contains(s, der[len(der)-64:]), "private key stored in clear")
			}
		}
		// Another master key cannot read them.
		other, err := secrets.NewKeyring(secrets.NewKey())
		require.NoError(t, err)
		deps := e.deps
		deps.Keyring = other
		s, err := New(e.cfg, deps)
		require.NoError(t, err)
		require.ErrorIs(t, s.Keys().Reload(context.Background()), secrets.ErrDecrypt)
	})
}

func TestRotate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		keys := e.srv.Keys()
		before, err := keys.List(ctx)
		require.NoError(t, err)
		oldActive, oldNext := before[0].ID, before[1].ID
		oldToken := e.login(nil)["id_token"].(string)

		_, err = keys.Rotate(ctx, false)
		require.ErrorIs(t, err, ErrKeyTooNew, "a next key just published must not sign yet")

		e.clock.Advance(DefaultKeyPublishLead)
		info, err := keys.Rotate(ctx, false)
		require.NoError(t, err)
		require.Equal(t, oldNext, info.ID, "the published next key becomes active")
		require.Equal(t, KeyActive, info.State)

		after, err := keys.List(ctx)
		require.NoError(t, err)
		require.Len(t, after, 3)
		require.Equal(t, oldNext, after[0].ID)
		require.Equal(t, KeyNext, after[1].State)
		require.Equal(t, oldActive, after[2].ID)
		require.Equal(t, KeyRetired, after[2].State)
		require.True(t, after[2].Published, "a retired key stays in JWKS while its tokens live")
		require.True(t, after[2].RetiredAt.Add(staleReloads*DefaultKeyReloadInterval+DefaultIDTokenLifetime).Equal(*after[2].RetireAfter))
		require.Len(t, jwks(t, e).Keys, 3)
		require.Equal(t, oldNext, kidOf(t, keys))
		e.verifyToken(oldToken) // still verifiable

		// Once every token of the retired key has expired it leaves JWKS,
		// and the next rotation deletes it.
		e.clock.Advance(staleReloads*DefaultKeyReloadInterval + DefaultIDTokenLifetime)
		require.NoError(t, keys.Reload(ctx))
		require.Len(t, jwks(t, e).Keys, 2)
		_, err = keys.Rotate(ctx, false)
		require.NoError(t, err)
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys WHERE id = ?`, oldActive))
		require.Len(t, jwks(t, e).Keys, 3)
	})
}

func TestRotateForceAndMissingNext(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		_, err := e.srv.Keys().Rotate(ctx, true)
		require.NoError(t, err)
		_, err = db.Exec(`DELETE FROM oidc_signing_keys WHERE state = 'next'`)
		require.NoError(t, err)
		_, err = e.srv.Keys().Rotate(ctx, true)
		require.ErrorIs(t, err, ErrNoNextKey)
	})
}

func TestConcurrentRotationsKeepOneActiveKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		e.clock.Advance(DefaultKeyPublishLead)
		replicas := []*Server{e.srv, e.replica(), e.replica(), e.replica()}
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for i, r := range replicas {
			wg.Go(func() { _, errs[i] = r.Keys().Rotate(context.Background(), false) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			// A replica that read the keys after another rotation finds a
			// next key too new to promote; one that read them before finds
			// them changed.
			if !errors.Is(err, ErrKeyTooNew) {
				require.ErrorIs(t, err, ErrConcurrentRotation)
			}
		}
		require.GreaterOrEqual(t, ok, 1)
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys WHERE state = 'active'`))
		require.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM oidc_signing_keys WHERE state = 'next'`))
	})
}

func TestReplicaFollowsRotationAfterReloadInterval(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		other := e.replica()
		before := kidOf(t, other.Keys())
		e.clock.Advance(DefaultKeyPublishLead)
		// The other replica has reloaded just now; the rotation happens after.
		require.NoError(t, other.Keys().Reload(context.Background()))
		info, err := e.srv.Keys().Rotate(context.Background(), false)
		require.NoError(t, err)
		require.Equal(t, before, kidOf(t, other.Keys()), "until its cache is stale the replica signs with the retired (still published) key")
		e.clock.Advance(DefaultKeyReloadInterval)
		require.Equal(t, info.ID, kidOf(t, other.Keys()))
	})
}

func TestUnknownKidReloads(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		other := e.replica()
		require.NoError(t, other.Keys().Reload(context.Background()))
		e.clock.Advance(DefaultKeyPublishLead)
		_, err := e.srv.Keys().Rotate(context.Background(), false)
		require.NoError(t, err)
		// A token signed by the new next key's successor is not yet known
		// to the other replica's cache: it reloads on the unknown kid.
		infos, err := e.srv.Keys().List(context.Background())
		require.NoError(t, err)
		_, ok, err := other.Keys().publicKey(context.Background(), infos[1].ID)
		require.NoError(t, err)
		require.True(t, ok)
		_, ok, err = other.Keys().publicKey(context.Background(), "no-such-kid")
		require.NoError(t, err)
		require.False(t, ok)
	})
}

func TestSignWithoutKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		_, err := db.Exec(`DELETE FROM oidc_signing_keys`)
		require.NoError(t, err)
		s := e.replica()
		_, err = s.Keys().sign(context.Background(), []byte(`{}`))
		require.ErrorIs(t, err, ErrNoSigningKey)
	})
}

// A replica keeps signing and serving JWKS from its cache for a few
// reload intervals when the keys cannot be read, then gives up.
func TestKeysSurviveDatabaseBlip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		kid := kidOf(t, e.srv.Keys())
		_, err := db.Exec(`ALTER TABLE oidc_signing_keys RENAME TO oidc_signing_keys_away`)
		require.NoError(t, err)
		e.clock.Advance(DefaultKeyReloadInterval)
		require.Equal(t, kid, kidOf(t, e.srv.Keys()), "stale but usable")
		require.Len(t, jwks(t, e).Keys, 2)
		e.clock.Advance(staleReloads * DefaultKeyReloadInterval)
		_, err = e.srv.Keys().sign(context.Background(), []byte(`{}`))
		require.Error(t, err, "too stale to trust")
		_, err = db.Exec(`ALTER TABLE oidc_signing_keys_away RENAME TO oidc_signing_keys`)
		require.NoError(t, err)
		require.Equal(t, kid, kidOf(t, e.srv.Keys()))
	})
}
