package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/secrets"
)

// KeyState is where a signing key is in its life.
type KeyState string

// Signing-key states. A key is published in JWKS from the moment it is
// created (next), signs while active, and stays published after retirement
// until every token it signed has expired.
const (
	KeyNext    KeyState = "next"
	KeyActive  KeyState = "active"
	KeyRetired KeyState = "retired"
)

// signingAlg is the JWS algorithm of every token the server signs (NHS
// login signs RS512).
const signingAlg = jose.RS512

// signingKeyBits is the RSA modulus size of generated signing keys.
const signingKeyBits = 2048

// sealPurpose binds encrypted signing keys to their use (Keyring.Seal).
const sealPurpose = "oidc-signing-key"

// staleReloads is how many reload intervals a replica keeps using its
// cached keys when the database cannot be read.
const staleReloads = 4

// Errors from key management.
var (
	// ErrNoSigningKey means no active key exists: EnsureKeys has not run.
	ErrNoSigningKey = errors.New("no active signing key (EnsureKeys has not run)")
	// ErrNoNextKey means Rotate found no next key to promote.
	ErrNoNextKey = errors.New("no next signing key to promote")
	// ErrKeyTooNew means the next key has not been published long enough
	// for relying parties to have fetched it; Rotate with force overrides.
	ErrKeyTooNew = errors.New("next signing key published too recently")
	// ErrConcurrentRotation means another rotation changed the keys first.
	ErrConcurrentRotation = errors.New("signing keys changed during rotation")
)

// KeyInfo describes a signing key for operators (the keys CLI); it holds
// no key material.
type KeyInfo struct {
	ID          string     `json:"kid"`
	State       KeyState   `json:"state"`
	Algorithm   string     `json:"alg"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	// RetireAfter is when a retired key leaves JWKS.
	RetireAfter *time.Time `json:"retire_after,omitempty"`
	// Published reports whether the key is in JWKS now.
	Published bool `json:"published"`
}

// Keys manages the token-signing keys: it creates and rotates them in the
// database (private keys sealed with the keyring) and caches them in
// memory, reloading periodically so that replicas follow a rotation made
// elsewhere. It is safe for concurrent use.
type Keys struct {
	store       *store
	keyring     *secrets.Keyring
	now         func() time.Time
	reloadEvery time.Duration
	publishLead time.Duration
	// maxSigned is the longest lifetime of anything a key signs.
	maxSigned time.Duration
	generate  func() (*rsa.PrivateKey, error)
	log       *slog.Logger

	reloading sync.Mutex
	snap      atomic.Pointer[keySnapshot]
	// lastMiss is the UnixNano time of the last reload forced by an
	// unknown kid; it limits how often tokens with random kids reach the DB.
	lastMiss atomic.Int64
}

type keySnapshot struct {
	loadedAt time.Time
	active   *loadedKey
	byID     map[string]*loadedKey // every published key
	jwks     []byte
}

type loadedKey struct {
	id          string
	state       KeyState
	priv        *rsa.PrivateKey
	signer      jose.Signer // only for the active key
	retireAfter time.Time
}

type keyRow struct {
	ID          string     `db:"id"`
	State       KeyState   `db:"state"`
	Algorithm   string     `db:"algorithm"`
	PrivateKey  []byte     `db:"private_key"`
	CreatedAt   time.Time  `db:"created_at"`
	ActivatedAt *time.Time `db:"activated_at"`
	RetiredAt   *time.Time `db:"retired_at"`
	RetireAfter *time.Time `db:"retire_after"`
}

func newKeys(st *store, keyring *secrets.Keyring, now func() time.Time, cfg Config, log *slog.Logger) *Keys {
	return &Keys{
		log:         log,
		store:       st,
		keyring:     keyring,
		now:         now,
		reloadEvery: cfg.KeyReloadInterval,
		publishLead: cfg.KeyPublishLead,
		maxSigned:   max(cfg.IDTokenLifetime, cfg.AccessTokenLifetime),
		generate: func() (*rsa.PrivateKey, error) {
			return rsa.GenerateKey(rand.Reader, signingKeyBits)
		},
	}
}

// EnsureKeys creates the active and the next key when they are missing.
// Call it at startup; replicas starting together are safe: the slot
// constraint lets one insert win and the others change nothing.
func (k *Keys) EnsureKeys(ctx context.Context) error {
	for _, st := range []KeyState{KeyActive, KeyNext} {
		taken, err := k.store.keySlotTaken(ctx, st)
		if err != nil {
			return fmt.Errorf("look for %s signing key: %w", st, err)
		}
		if taken {
			continue
		}
		if _, err := k.insertKey(ctx, st); err != nil {
			return err
		}
	}
	return k.Reload(ctx)
}

// insertKey generates a key and stores it in slot st; it does nothing when
// another process filled the slot first. It reports whether it inserted.
func (k *Keys) insertKey(ctx context.Context, st KeyState) (bool, error) {
	priv, err := k.generate()
	if err != nil {
		return false, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return false, fmt.Errorf("encode signing key: %w", err)
	}
	now := k.now()
	var activated *time.Time
	if st == KeyActive {
		activated = &now
	}
	inserted, err := k.store.insertKeyInSlot(ctx, secrets.NewID(), st, string(signingAlg), k.keyring.Seal(sealPurpose, der), now, activated)
	if err != nil {
		return false, fmt.Errorf("store %s signing key: %w", st, err)
	}
	return inserted, nil
}

// Rotate promotes the next key to active, retires the active key (it stays
// published until every token it signed has expired), creates a new next
// key, and drops keys whose retirement has run out. It refuses with
// ErrKeyTooNew when the next key was published less than the configured
// lead time ago, unless force is set. It returns the new active key.
func (k *Keys) Rotate(ctx context.Context, force bool) (KeyInfo, error) {
	rows, err := k.rows(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	var active, next *keyRow
	for i := range rows {
		switch rows[i].State {
		case KeyActive:
			active = &rows[i]
		case KeyNext:
			next = &rows[i]
		}
	}
	if next == nil {
		return KeyInfo{}, ErrNoNextKey
	}
	now := k.now()
	if age := now.Sub(next.CreatedAt); !force && age < k.publishLead {
		return KeyInfo{}, fmt.Errorf("%w: published %s ago, wait until %s or force",
			ErrKeyTooNew, age.Round(time.Second), next.CreatedAt.Add(k.publishLead).Format(time.RFC3339))
	}
	// Generate outside the transaction: it takes a while.
	newNext, err := k.generate()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(newNext)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("encode signing key: %w", err)
	}

	// Another replica may still sign with the old key until its cache of
	// keys is renewed (at worst after staleReloads intervals).
	retireAfter := now.Add(staleReloads*k.reloadEvery + k.maxSigned)
	var activeID string
	if active != nil {
		activeID = active.ID
	}
	if err := k.store.rotateKeys(ctx, activeID, next.ID, secrets.NewID(), string(signingAlg), k.keyring.Seal(sealPurpose, der), now, retireAfter); err != nil {
		return KeyInfo{}, err
	}
	if err := k.Reload(ctx); err != nil {
		return KeyInfo{}, err
	}
	info := next.info(now)
	info.State, info.ActivatedAt = KeyActive, &now
	return info, nil
}

// List returns every stored key, active first, then next, then retired
// keys newest first.
func (k *Keys) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := k.rows(ctx)
	if err != nil {
		return nil, err
	}
	now := k.now()
	out := make([]KeyInfo, len(rows))
	for i := range rows {
		out[i] = rows[i].info(now)
	}
	return out, nil
}

func (r *keyRow) info(now time.Time) KeyInfo {
	return KeyInfo{
		ID:          r.ID,
		State:       r.State,
		Algorithm:   r.Algorithm,
		CreatedAt:   r.CreatedAt.UTC(),
		ActivatedAt: utcPtr(r.ActivatedAt),
		RetiredAt:   utcPtr(r.RetiredAt),
		RetireAfter: utcPtr(r.RetireAfter),
		Published:   r.State != KeyRetired || (r.RetireAfter != nil && now.Before(*r.RetireAfter)),
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (k *Keys) rows(ctx context.Context) ([]keyRow, error) {
	rows, err := k.store.keyRows(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return rows, nil
}

// Reload reads the published keys from the database now. The cache also
// reloads by itself every KeyReloadInterval; call Reload when told that
// another replica rotated.
func (k *Keys) Reload(ctx context.Context) error {
	k.reloading.Lock()
	defer k.reloading.Unlock()
	return k.reloadLocked(ctx)
}

func (k *Keys) reloadLocked(ctx context.Context) error {
	rows, err := k.rows(ctx)
	if err != nil {
		return err
	}
	now := k.now()
	prev := k.snap.Load()
	s := &keySnapshot{loadedAt: now, byID: make(map[string]*loadedKey, len(rows))}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for i := range rows {
		r := &rows[i]
		if !r.info(now).Published {
			continue
		}
		lk := &loadedKey{id: r.ID, state: r.State}
		if r.RetireAfter != nil {
			lk.retireAfter = r.RetireAfter.UTC()
		}
		if prev != nil && prev.byID[r.ID] != nil {
			lk.priv = prev.byID[r.ID].priv
		} else {
			pt, err := k.keyring.Open(sealPurpose, r.PrivateKey)
			if err != nil {
				return fmt.Errorf("decrypt signing key %s: %w", r.ID, err)
			}
			parsed, err := x509.ParsePKCS8PrivateKey(pt)
			if err != nil {
				return fmt.Errorf("parse signing key %s: %w", r.ID, err)
			}
			priv, ok := parsed.(*rsa.PrivateKey)
			if !ok {
				return fmt.Errorf("signing key %s is %T, not RSA", r.ID, parsed)
			}
			lk.priv = priv
		}
		if r.State == KeyActive {
			signer, err := jose.NewSigner(jose.SigningKey{
				Algorithm: signingAlg,
				Key:       jose.JSONWebKey{Key: lk.priv, KeyID: r.ID, Algorithm: string(signingAlg), Use: "sig"},
			}, (&jose.SignerOptions{}).WithType("JWT"))
			if err != nil {
				return fmt.Errorf("signer for key %s: %w", r.ID, err)
			}
			lk.signer = signer
			s.active = lk
		}
		s.byID[r.ID] = lk
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key: &lk.priv.PublicKey, KeyID: r.ID, Algorithm: string(signingAlg), Use: "sig",
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encode JWKS: %w", err)
	}
	s.jwks = b
	k.snap.Store(s)
	return nil
}

// snapshot returns the cached keys, reloading them when they are older
// than the reload interval. While one goroutine reloads, the others keep
// using the previous snapshot.
func (k *Keys) snapshot(ctx context.Context) (*keySnapshot, error) {
	s := k.snap.Load()
	if s != nil && k.now().Sub(s.loadedAt) < k.reloadEvery {
		return s, nil
	}
	if s == nil {
		if err := k.Reload(ctx); err != nil {
			return nil, err
		}
		return k.snap.Load(), nil
	}
	if !k.reloading.TryLock() {
		return s, nil
	}
	defer k.reloading.Unlock()
	if cur := k.snap.Load(); cur != s {
		return cur, nil // reloaded meanwhile
	}
	if err := k.reloadLocked(ctx); err != nil {
		// Keep serving what we have for a while: JWKS and signing should
		// survive a database blip. retire_after allows for this staleness.
		if k.now().Sub(s.loadedAt) < staleReloads*k.reloadEvery {
			k.log.Warn("oidc: reloading signing keys failed; using the cached ones", "err", err)
			return s, nil
		}
		return nil, err
	}
	return k.snap.Load(), nil
}

// sign signs payload (JSON claims) with the active key as a compact JWS
// with header {"alg":"RS512","typ":"JWT","kid":...}.
func (k *Keys) sign(ctx context.Context, payload []byte) (string, error) {
	s, err := k.snapshot(ctx)
	if err != nil {
		return "", err
	}
	if s.active == nil {
		if err := k.Reload(ctx); err != nil {
			return "", err
		}
		if s = k.snap.Load(); s.active == nil {
			return "", ErrNoSigningKey
		}
	}
	jws, err := s.active.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("serialize token: %w", err)
	}
	return out, nil
}

// publicKey returns the published key kid for verifying a token this
// server signed. An unknown kid triggers a reload (at most once a second),
// since another replica may have rotated.
func (k *Keys) publicKey(ctx context.Context, kid string) (*rsa.PublicKey, bool, error) {
	s, err := k.snapshot(ctx)
	if err != nil {
		return nil, false, err
	}
	if lk := s.byID[kid]; lk != nil {
		return &lk.priv.PublicKey, true, nil
	}
	now := k.now().UnixNano()
	last := k.lastMiss.Load()
	if now-last < int64(time.Second) || !k.lastMiss.CompareAndSwap(last, now) {
		return nil, false, nil
	}
	if err := k.Reload(ctx); err != nil {
		return nil, false, err
	}
	if lk := k.snap.Load().byID[kid]; lk != nil {
		return &lk.priv.PublicKey, true, nil
	}
	return nil, false, nil
}

// handleJWKS serves /.well-known/jwks.json: every published key (next,
// active, and retired keys until their tokens have expired).
func (k *Keys) handleJWKS(c fiber.Ctx) error {
	s, err := k.snapshot(c.Context())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.jwks)
}
