package fido_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/fido"
)

const (
	rpID     = "idp.test"
	rpOrigin = "https://idp.test"
)

// rp is the relying party as the virtual authenticator sees it.
var rp = virtualwebauthn.RelyingParty{ID: rpID, Name: "idlink", Origin: rpOrigin}

// clock is an injectable clock that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type fixture struct {
	svc   *fido.Service
	clock *clock
	db    *sqlx.DB
}

func baseConfig() fido.Config {
	return fido.Config{RPID: rpID, RPDisplayName: "idlink", RPOrigins: []string{rpOrigin}}
}

func newFixture(t testing.TB, db *sqlx.DB, cfg fido.Config, devices fido.DeviceChecker) *fixture {
	t.Helper()
	// The real time, so that go-webauthn's own expiry check (which reads
	// time.Now) agrees with ours.
	clk := &clock{now: time.Now().UTC()}
	svc, err := fido.New(db, cfg, devices, clk.Now)
	require.NoError(t, err)
	return &fixture{svc: svc, clock: clk, db: db}
}

// phone is a virtual authenticator holding one credential for one account.
type phone struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPhone() *phone {
	return &phone{auth: virtualwebauthn.NewAuthenticator(), cred: virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)}
}

func user(account string) fido.User {
	return fido.User{AccountID: account, Name: account + "@example.org", DisplayName: "Person " + account}
}

// attest answers registration options as the phone would, for relying
// party r.
func (p *phone) attest(t testing.TB, r virtualwebauthn.RelyingParty, options []byte) []byte {
	t.Helper()
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	return []byte(virtualwebauthn.CreateAttestationResponse(r, p.auth, p.cred, *ao))
}

// enrolled records a successful registration: the phone now returns the
// user handle of the options in its assertions.
func (p *phone) enrolled(t testing.TB, options []byte) {
	t.Helper()
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	p.auth.Options.UserHandle = []byte(ao.UserID)
	p.auth.AddCredential(p.cred)
}

// assert answers request options as the phone would, for relying party r,
// after bumping its counter.
func (p *phone) assert(t testing.TB, r virtualwebauthn.RelyingParty, options []byte) []byte {
	t.Helper()
	ao, err := virtualwebauthn.ParseAssertionOptions(string(options))
	require.NoError(t, err)
	p.cred.Counter++
	return []byte(virtualwebauthn.CreateAssertionResponse(r, p.auth, p.cred, *ao))
}

// register runs a whole registration of the phone's credential.
func (f *fixture) register(t testing.TB, p *phone, account, kind, name, deviceID string) fido.Credential {
	t.Helper()
	ctx := context.Background()
	id, options, err := f.svc.BeginRegistration(ctx, user(account), kind)
	require.NoError(t, err)
	c, err := f.svc.FinishRegistration(ctx, account, id, p.attest(t, rp, options), name, deviceID)
	require.NoError(t, err)
	p.enrolled(t, options)
	return c
}

// login runs a discoverable login with the phone.
func (f *fixture) login(t testing.TB, p *phone) (fido.Credential, error) {
	t.Helper()
	ctx := context.Background()
	id, options, err := f.svc.BeginDiscoverableLogin(ctx)
	require.NoError(t, err)
	return f.svc.FinishDiscoverableLogin(ctx, id, p.assert(t, rp, options))
}

// publicKeyOptions decodes the "publicKey" member of options JSON.
func publicKeyOptions(t testing.TB, options []byte) map[string]any {
	t.Helper()
	var o struct {
		PublicKey map[string]any `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal(options, &o))
	require.NotNil(t, o.PublicKey)
	return o.PublicKey
}
