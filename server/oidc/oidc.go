// Package oidc is idlink's OpenID Connect provider, compatible with NHS
// login's public interface: discovery, JWKS, the trustmark, /token
// (private_key_jwt client authentication, authorization codes with PKCE,
// rotating refresh tokens), /userinfo, signing keys, registered clients
// and their admin API, scopes and claims gated by the vector of trust, and
// asserted_login_identity.
//
// The /authorize endpoint, consent and the login journey live with their
// caller, which uses this package through Server: Clients to find the
// client and check redirect_uri and vtr, ResolveScopes, IssueCode and
// VerifyAssertedLoginIdentity. Claims about people come from the People
// interface, implemented by the account capability.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/web"
)

// NHS login's lifetimes, used when Config leaves them zero.
const (
	DefaultCodeLifetime         = 10 * time.Minute
	DefaultIDTokenLifetime      = 60 * time.Minute
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
	DefaultKeyReloadInterval    = 30 * time.Second
	// DefaultKeyPublishLead is how long a next key must have been in JWKS
	// before Rotate makes it sign: well beyond JWKS's 5-minute cache age.
	DefaultKeyPublishLead = 10 * time.Minute
)

// minAdminTokenLen is the shortest admin token accepted.
const minAdminTokenLen = 24

// Config configures a Server.
type Config struct {
	// Issuer is the provider's base URL (https, or http in development),
	// with no query or fragment; endpoints live under it.
	Issuer string
	// Development allows http issuers and http loopback redirect URIs and
	// enables EnsureDemoClients.
	Development bool
	// AdminToken protects the admin API; empty disables it.
	AdminToken string
	// AllowedAssertedPairs lists, for each relying party (RP1 client_id),
	// the client_ids of the relying parties (RP2) that may accept its
	// asserted_login_identity.
	AllowedAssertedPairs map[string][]string
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// Lifetimes; zero selects the NHS login default.
	CodeLifetime         time.Duration
	IDTokenLifetime      time.Duration
	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	// KeyReloadInterval is how often cached signing keys are re-read.
	KeyReloadInterval time.Duration
	// KeyPublishLead is how long a next key is published before Rotate
	// lets it sign.
	KeyPublishLead time.Duration
}

// Deps are the collaborators a Server needs.
type Deps struct {
	DB      *sqlx.DB
	Keyring *secrets.Keyring
	// People provides the claims about an account.
	People People
	// Audit records security events; one writing to DB when nil.
	Audit *audit.Log
	// Logger receives server errors that the client only sees as
	// server_error; slog.Default() when nil.
	Logger *slog.Logger
}

// Server is the OpenID Connect provider. Create it with New, call
// Keys().EnsureKeys at startup, mount it with Register. It is safe for
// concurrent use.
type Server struct {
	cfg       Config
	issuer    string // without trailing slash
	issuerURL *url.URL
	store     *store
	keyring   *secrets.Keyring
	people    People
	audit     *audit.Log
	log       *slog.Logger

	keys      *Keys
	clients   *Clients
	admin     *AdminAPI
	verifier  *assertionVerifier
	pairs     map[string]map[string]bool
	discovery []byte
	trustmark []byte
}

// New checks cfg and returns a Server. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.DB == nil || deps.Keyring == nil || deps.People == nil {
		return nil, errors.New("oidc: DB, Keyring and People are required")
	}
	u, err := parseIssuer(cfg.Issuer, cfg.Development)
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < minAdminTokenLen {
		return nil, fmt.Errorf("oidc: admin token must be at least %d characters", minAdminTokenLen)
	}
	setDefault(&cfg.CodeLifetime, DefaultCodeLifetime)
	setDefault(&cfg.IDTokenLifetime, DefaultIDTokenLifetime)
	setDefault(&cfg.AccessTokenLifetime, DefaultAccessTokenLifetime)
	setDefault(&cfg.RefreshTokenLifetime, DefaultRefreshTokenLifetime)
	setDefault(&cfg.KeyReloadInterval, DefaultKeyReloadInterval)
	setDefault(&cfg.KeyPublishLead, DefaultKeyPublishLead)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pairs := map[string]map[string]bool{}
	for from, tos := range cfg.AllowedAssertedPairs {
		if from == "" {
			return nil, errors.New("oidc: asserted login pair with an empty client_id")
		}
		for _, to := range tos {
			if to == "" || to == from {
				return nil, fmt.Errorf("oidc: asserted login pair %q → %q is not a pair of two clients", from, to)
			}
			if pairs[from] == nil {
				pairs[from] = map[string]bool{}
			}
			pairs[from][to] = true
		}
	}
	s := &Server{
		cfg:       cfg,
		issuer:    u.String(),
		issuerURL: u,
		store:     newStore(deps.DB),
		keyring:   deps.Keyring,
		people:    deps.People,
		audit:     deps.Audit,
		log:       deps.Logger,
		pairs:     pairs,
	}
	if s.audit == nil {
		s.audit = audit.New(deps.DB, s.now)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.keys = newKeys(s.store, deps.Keyring, s.now, cfg, s.log)
	s.clients = &Clients{store: s.store, now: s.now, development: cfg.Development}
	s.admin = &AdminAPI{clients: s.clients, token: cfg.AdminToken, audit: s.audit, log: s.log}
	s.verifier = &assertionVerifier{
		clients:   s.clients,
		now:       s.now,
		audiences: []string{s.endpoint("/token"), s.issuer},
	}
	if s.discovery, err = s.buildDiscovery(); err != nil {
		return nil, err
	}
	if s.trustmark, err = s.buildTrustmark(); err != nil {
		return nil, err
	}
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func parseIssuer(raw string, development bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "https" && !(development && u.Scheme == "http"):
		return nil, fmt.Errorf("oidc: issuer %q must be an https URL (http only in development)", raw)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("oidc: issuer %q must be a plain base URL (host, optional path, no query or fragment)", raw)
	}
	return u, nil
}

// now is the server clock in UTC, at the databases' microsecond precision.
func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Issuer returns the issuer URL, as in tokens and discovery.
func (s *Server) Issuer() string { return s.issuer }

// endpoint returns the absolute URL of a path under the issuer.
func (s *Server) endpoint(path string) string { return s.issuer + path }

// Keys returns the signing-key manager (EnsureKeys at startup; the keys CLI).
func (s *Server) Keys() *Keys { return s.keys }

// Clients returns the client registry (the client CLI, and /authorize's
// client lookup).
func (s *Server) Clients() *Clients { return s.clients }

// Admin returns the admin JSON API, to be mounted under a group of the
// caller's choosing.
func (s *Server) Admin() *AdminAPI { return s.admin }

// Register mounts the protocol endpoints under the issuer's path:
// discovery, JWKS, trustmark, /token and /userinfo. /authorize belongs to
// the caller.
func (s *Server) Register(r fiber.Router) {
	if p := s.issuerURL.Path; p != "" && p != "/" {
		r = r.Group(p)
	}
	r.Get("/.well-known/openid-configuration", s.handleDiscovery)
	r.Get("/.well-known/jwks.json", s.keys.handleJWKS)
	r.Get("/trustmark/:host", s.handleTrustmark)
	r.Post("/token", s.handleToken)
	r.Get("/userinfo", s.handleUserinfo)
	r.Post("/userinfo", s.handleUserinfo)
	r.Patch("/userinfo", s.handleUserinfoPatch)
}

// Close releases the statements the server prepared. The database handle
// stays open: it belongs to the caller.
func (s *Server) Close() error { return s.store.close() }

// Purge deletes what has expired: single-use JWT ids, grants with their
// refresh tokens and ID-token records, and stale refresh tokens. Call it
// periodically (Maintain does).
func (s *Server) Purge(ctx context.Context) error {
	return s.store.purge(ctx, s.now())
}

// Maintain purges expired state and reloads signing keys every interval
// until ctx ends. Run it in a goroutine of its own.
func (s *Server) Maintain(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("oidc purge", "err", err)
		}
		if err := s.keys.Reload(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("oidc key reload", "err", err)
		}
	}
}

// ForgetAccount deletes everything this package keeps about an account
// (subject, grants and their tokens, client metadata); call it when the
// account is deleted. Tokens already issued stop working at /userinfo.
func (s *Server) ForgetAccount(ctx context.Context, accountID string) error {
	return s.store.forgetAccount(ctx, accountID)
}

// actor describes the request for the audit log.
func actor(c fiber.Ctx) audit.Actor {
	return audit.Actor{IP: web.ClientIP(c), UserAgent: c.Get(fiber.HeaderUserAgent), RequestID: web.RequestID(c)}
}

// record writes an audit event; a failure to audit is logged, not fatal to
// the request that caused it (which has already been decided).
func (s *Server) record(ctx context.Context, a audit.Actor, typ string, outcome audit.Outcome, accountID string, detail map[string]any) {
	if err := s.audit.Record(ctx, a, typ, outcome, accountID, detail); err != nil {
		s.log.Error("oidc audit", "type", typ, "err", err)
	}
}
