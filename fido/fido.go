// Package fido runs WebAuthn ceremonies with go-webauthn, without HTTP:
// registering passkeys (from settings) and companion-app credentials (the
// phone's platform authenticator, at app enrolment), and verifying
// assertions for passkey login, step-up of a known account, the app's
// biometric login and, later, push approvals.
//
// Every credential is created with a resident key and user verification
// required, so that a verified assertion proves the Cm credential component
// (an asymmetric key unlocked by fingerprint, face or device PIN).
//
// Ceremony state lives in the database, not in memory or cookies: Begin*
// stores go-webauthn's SessionData under a random ceremony id, and Finish*
// takes it back exactly once (DELETE ... RETURNING) before the timeout.
// Sign counters, the clone warning and the backup flags are stored and
// checked after every use; a counter that goes backwards blocks the
// credential.
//
// The caller receives request and creation options as JSON to hand to the
// browser or app unchanged (PublicKeyCredential.parseCreationOptionsFromJSON
// and parseRequestOptionsFromJSON take the "publicKey" member), and passes
// the JSON the browser or app answered back as a []byte.
package fido

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// Credential kinds.
const (
	// KindPasskey is a passkey added from the settings page (any
	// authenticator: platform, phone or security key; possibly synced).
	KindPasskey = "passkey"
	// KindApp is the companion app's credential, created by the phone's
	// platform authenticator at enrolment and bound to a device.
	KindApp = "app"
)

// Attestation conveyance preferences accepted in Config.Attestation.
const (
	AttestationNone     = "none"
	AttestationIndirect = "indirect"
	AttestationDirect   = "direct"
)

// DefaultTimeout is how long a ceremony may take when Config.Timeout is 0.
const DefaultTimeout = 2 * time.Minute

// MaxResponseSize bounds the WebAuthn JSON a Finish call accepts.
const MaxResponseSize = 64 << 10

// MaxNameLength bounds a credential's name, in characters.
const MaxNameLength = 64

// Config is the relying party's WebAuthn configuration.
type Config struct {
	// RPID is the relying party id, a registrable domain such as
	// "login.example.org" (a bare host, no scheme or port).
	RPID string
	// RPDisplayName is the name authenticators show ("idlink").
	RPDisplayName string
	// RPOrigins are the origins responses may come from, such as
	// "https://login.example.org". Native-app origins such as
	// "android:apk-key-hash:..." are accepted as given.
	RPOrigins []string
	// Timeout is how long a ceremony stays valid between Begin and Finish;
	// it is enforced. Zero means DefaultTimeout.
	Timeout time.Duration
	// AAGUIDAllowList, when not empty, refuses registrations whose
	// authenticator AAGUID is not listed (including the all-zero AAGUID).
	// With attestation "none" the AAGUID is as the authenticator states
	// it, unverified.
	AAGUIDAllowList []uuid.UUID
	// RefuseBackupEligible refuses registrations of backup-eligible
	// (synced) credentials. The zero value allows them.
	RefuseBackupEligible bool
	// Attestation is the attestation conveyance preference: "none" (the
	// default when empty), "indirect" or "direct".
	Attestation string
}

// DeviceChecker tells whether a companion-app device may still be used.
// device.Store satisfies it. CheckActive returns nil for a registered,
// not removed device, and an error otherwise.
type DeviceChecker interface {
	CheckActive(ctx context.Context, deviceID string) error
}

// Service runs WebAuthn ceremonies and keeps credentials. It is safe for
// concurrent use.
type Service struct {
	db       *sqlx.DB
	cfg      Config
	wa       *webauthn.WebAuthn
	origins  []string // http(s) origins
	opaque   []string // native-app and other opaque origins
	rpIDHash [32]byte
	devices  DeviceChecker
	now      func() time.Time
}

// New returns a Service over a migrated database. devices, when not nil,
// is asked before an app credential (one bound to a device) is accepted,
// so that removing the device stops its biometric login at once. now is the
// clock (time.Now in production).
func New(db *sqlx.DB, cfg Config, devices DeviceChecker, now func() time.Time) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RPID == "" || strings.ContainsAny(cfg.RPID, ":/") {
		return nil, fmt.Errorf("%w: RPID must be a bare domain, got %q", ErrInvalid, cfg.RPID)
	}
	if strings.TrimSpace(cfg.RPDisplayName) == "" {
		return nil, fmt.Errorf("%w: RPDisplayName is required", ErrInvalid)
	}
	if len(cfg.RPOrigins) == 0 {
		return nil, fmt.Errorf("%w: at least one origin is required", ErrInvalid)
	}
	var pref protocol.ConveyancePreference
	switch cfg.Attestation {
	case "", AttestationNone:
		cfg.Attestation, pref = AttestationNone, protocol.PreferNoAttestation
	case AttestationIndirect:
		pref = protocol.PreferIndirectAttestation
	case AttestationDirect:
		pref = protocol.PreferDirectAttestation
	default:
		return nil, fmt.Errorf("%w: attestation preference must be none, indirect or direct, got %q", ErrInvalid, cfg.Attestation)
	}
	s := &Service{db: db, cfg: cfg, devices: devices, now: now, rpIDHash: sha256.Sum256([]byte(cfg.RPID))}
	for _, o := range cfg.RPOrigins {
		if !protocol.IsOpaqueOrigin(o) {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("%w: origin %q must be scheme://host[:port]", ErrInvalid, o)
			}
			s.origins = append(s.origins, o)
			continue
		}
		s.opaque = append(s.opaque, o)
	}
	if len(s.origins) == 0 {
		return nil, fmt.Errorf("%w: at least one http(s) origin is required", ErrInvalid)
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout}
	rk := true
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPDisplayName,
		RPOrigins:             s.origins,
		RPOpaqueOrigins:       s.opaque,
		AttestationPreference: pref,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &rk,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.wa = wa
	return s, nil
}

// nowUTC returns the clock in UTC, at the precision both databases keep.
func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// User is the person a credential is registered for.
type User struct {
	// AccountID is the account the credential will belong to. It never
	// reaches the authenticator: a random user handle, kept per account,
	// stands for it.
	AccountID string
	// Name identifies the account to the person, e.g. their email address.
	Name string
	// DisplayName is a friendlier name; Name is used when empty.
	DisplayName string
}

// Credential is a registered WebAuthn credential as stored.
type Credential struct {
	ID        []byte // the credential id; base64url of it names it in pages and APIs
	AccountID string
	Kind      string // KindPasskey or KindApp
	DeviceID  string // the companion-app device of a KindApp credential, "" otherwise
	Name      string
	// PublicKey is the COSE-encoded credential public key.
	PublicKey         []byte
	AttestationType   string
	AttestationFormat string
	AAGUID            uuid.UUID
	SignCount         uint32
	CloneWarning      bool
	BackupEligible    bool // may be synced to other devices (a "synced passkey")
	BackupState       bool // is currently backed up
	Transports        []string
	UserVerified      bool // the authenticator verified the user at registration
	CreatedAt         time.Time
	LastUsedAt        *time.Time
	BlockedAt         *time.Time // set when the counter went backwards
}

// Blocked reports whether the credential has been blocked.
func (c Credential) Blocked() bool { return c.BlockedAt != nil }

// webauthn returns the credential as go-webauthn wants it.
func (c Credential) webauthn() webauthn.Credential {
	flags := protocol.FlagUserPresent
	if c.UserVerified {
		flags |= protocol.FlagUserVerified
	}
	if c.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if c.BackupState {
		flags |= protocol.FlagBackupState
	}
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags:             webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{
			AAGUID:       c.AAGUID[:],
			SignCount:    c.SignCount,
			CloneWarning: c.CloneWarning,
		},
	}
}

// webUser implements webauthn.User for one account.
type webUser struct {
	handle      []byte
	name        string
	displayName string
	creds       []webauthn.Credential
}

func (u *webUser) WebAuthnID() []byte                         { return u.handle }
func (u *webUser) WebAuthnName() string                       { return u.name }
func (u *webUser) WebAuthnDisplayName() string                { return u.displayName }
func (u *webUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func webauthnCreds(cs []Credential) []webauthn.Credential {
	out := make([]webauthn.Credential, len(cs))
	for i, c := range cs {
		out[i] = c.webauthn()
	}
	return out
}
