// Package config reads the server's configuration from environment
// variables, fills in safe development defaults, and refuses combinations
// that must never reach production (sandbox providers, a plain-http issuer,
// missing keys).
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
	"github.com/idlink/idlink/server/web"
)

// Environment names.
const (
	Development = "development"
	Production  = "production"
)

// Config is everything the server reads from its environment.
type Config struct {
	Env         string // IDLINK_ENV: development (default) or production
	Addr        string // IDLINK_ADDR: listen address
	Issuer      string // IDLINK_ISSUER: public base URL, no trailing slash
	DataDir     string // IDLINK_DATA_DIR
	DatabaseURL string // IDLINK_DATABASE_URL: postgres://… or sqlite:PATH

	// SecretKey is the 32-byte master key (IDLINK_SECRET_KEY, hex or
	// base64). In development it is created in DataDir when unset.
	SecretKey []byte

	NotifyProvider  string            // IDLINK_NOTIFY_PROVIDER: sandbox or notify
	NotifyAPIKey    string            // IDLINK_NOTIFY_API_KEY
	NotifyBaseURL   string            // IDLINK_NOTIFY_BASE_URL
	NotifyTemplates map[string]string // IDLINK_NOTIFY_TEMPLATES: kind=template-id,…

	TermsVersion    string        // IDLINK_TERMS_VERSION
	SessionIdle     time.Duration // IDLINK_SESSION_IDLE
	SessionAbsolute time.Duration // IDLINK_SESSION_ABSOLUTE
	// StaffLoginMaxAge bounds how old the passkey or app login of an ID
	// checker may be for the back office (IDLINK_STAFF_LOGIN_MAX_AGE).
	StaffLoginMaxAge time.Duration
	TrustedProxies   []string // IDLINK_TRUSTED_PROXIES: comma-separated IPs or CIDRs (with IDLINK_PROXY_HEADER)
	// ProxyHeader is the header the trusted proxies write the client's
	// address in: "" (none, the default: the connection's peer is the
	// client), X-Forwarded-For or Forwarded (IDLINK_PROXY_HEADER).
	ProxyHeader       string
	MaxHashes         int           // IDLINK_MAX_CONCURRENT_HASHES: 0 = number of CPUs
	AdminToken        string        // IDLINK_ADMIN_TOKEN: bearer token of the admin API
	ShutdownTimeout   time.Duration // IDLINK_SHUTDOWN_TIMEOUT
	LogLevel          string        // IDLINK_LOG_LEVEL: debug, info, warn, error
	DemoClientKeyPath string        // where the development demo relying party's private key is written
	// AssertedLoginPairs lists, per relying party, the relying parties that
	// accept its asserted_login_identity (IDLINK_ASSERTED_LOGIN_PAIRS:
	// "rp1>rp2,rp1>rp3").
	AssertedLoginPairs map[string][]string

	WebAuthnRPID    string        // IDLINK_WEBAUTHN_RP_ID: default the issuer's host
	WebAuthnOrigins []string      // IDLINK_WEBAUTHN_ORIGINS: comma-separated; default the issuer's origin
	RememberDevice  time.Duration // IDLINK_REMEMBER_DEVICE_FOR: a remembered browser unused this long is forgotten
	// PasskeyAAGUIDs, when set, lists the only authenticator models
	// (AAGUIDs) allowed to register passkeys (IDLINK_PASSKEY_AAGUIDS).
	PasskeyAAGUIDs []string
	// RefuseSyncedPasskeys refuses backup-eligible (synced) passkeys
	// (IDLINK_REFUSE_SYNCED_PASSKEYS=true).
	RefuseSyncedPasskeys bool

	PushTTL time.Duration // IDLINK_PUSH_TTL: how long a phone approval request waits (default 60s)
	// StreamAddr, when set, is a second listen address serving only the
	// companion app's stream (GET /app/v1/stream) with a small HTTP read
	// buffer, which every held socket keeps (IDLINK_STREAM_ADDR).
	StreamAddr string
	// FCM wakes sleeping companion apps. Without a project, devices are
	// reached only over their sockets.
	FCMProjectID       string // IDLINK_FCM_PROJECT_ID
	FCMCredentialsFile string // IDLINK_FCM_CREDENTIALS_FILE: service-account key JSON; empty uses application default credentials
	FCMEndpoint        string // IDLINK_FCM_ENDPOINT: replaces https://fcm.googleapis.com/v1 (a local fake)

	// PDSProvider is "sandbox" (the shipped synthetic dataset, in-process)
	// or "fhir" (the PDS FHIR R4 API) (IDLINK_PDS_PROVIDER).
	PDSProvider string
	PDSBaseURL  string // IDLINK_PDS_BASE_URL: the FHIR root, e.g. https://int.api.service.nhs.uk/personal-demographics/FHIR/R4
	PDSTokenURL string // IDLINK_PDS_TOKEN_URL: the API platform's token endpoint
	PDSClientID string // IDLINK_PDS_CLIENT_ID: the application's API key
	PDSKeyFile  string // IDLINK_PDS_KEY_FILE: PEM RSA private key signing client assertions
	PDSKeyID    string // IDLINK_PDS_KEY_ID: its kid at the API platform

	MediaDir       string        // IDLINK_MEDIA_DIR: encrypted photo ID evidence (default DATA_DIR/media)
	MediaRetention time.Duration // IDLINK_MEDIA_RETENTION: evidence kept this long after the decision (default 168h)
	// RecentLogin is how recent a login must be to add or remove a way
	// in, change contact details or delete the account
	// (IDLINK_RECENT_LOGIN, default 15m).
	RecentLogin time.Duration
	// CloseUnusedAfter closes accounts with no login for this long
	// (IDLINK_CLOSE_UNUSED_AFTER, default 17520h: two years, NHS login's
	// rule); ClosureWarning is how long before closing the person is
	// emailed (IDLINK_CLOSURE_WARNING, default 720h: 30 days).
	CloseUnusedAfter time.Duration
	ClosureWarning   time.Duration
	// MaxUpload bounds a photo ID upload (photo and video in one form)
	// (IDLINK_MAX_UPLOAD_MB, default 64).
	MaxUpload int

	// The database pool and its server-side limits (PostgreSQL): at most
	// DBMaxOpenConns pooled connections per replica (IDLINK_DB_MAX_OPEN_CONNS,
	// default 20), DBMaxIdleConns of them kept idle (IDLINK_DB_MAX_IDLE_CONNS,
	// default the same); a statement running longer than DBStatementTimeout
	// (IDLINK_DB_STATEMENT_TIMEOUT, 5s) or waiting for a lock longer than
	// DBLockTimeout (IDLINK_DB_LOCK_TIMEOUT, 2s) is cancelled by the server.
	DBMaxOpenConns     int
	DBMaxIdleConns     int
	DBStatementTimeout time.Duration
	DBLockTimeout      time.Duration

	// RequestTimeout is every request's deadline (IDLINK_REQUEST_TIMEOUT,
	// default 8s). At most MaxConcurrentRequests run at once
	// (IDLINK_MAX_CONCURRENT_REQUESTS, 0 = 16 per CPU), RequestQueue more
	// wait (IDLINK_REQUEST_QUEUE, 0 = as many as run; -1 = none) for at most
	// RequestQueueWait (IDLINK_REQUEST_QUEUE_WAIT, 1s); the rest get 503.
	RequestTimeout        time.Duration
	MaxConcurrentRequests int
	RequestQueue          int
	RequestQueueWait      time.Duration

	// Sending are the budgets of texts and emails (IDLINK_SMS_*,
	// IDLINK_EMAIL_*; docs/SECURITY.md).
	Sending sending.Limits
	// CodeGuesses caps wrong security codes per account across resends
	// (IDLINK_CODE_GUESSES, default 10/1h).
	CodeGuesses ratelimit.Rate
	// NotifyDeadline bounds one send to the provider, retries included
	// (IDLINK_NOTIFY_DEADLINE, default 10s).
	NotifyDeadline time.Duration
	// MetricsAddr, when set, serves /metrics on a listener of its own and
	// not on the main one (IDLINK_METRICS_ADDR).
	MetricsAddr string
	// MetricsToken, when set, is the bearer token /metrics asks for
	// (IDLINK_METRICS_TOKEN). In production /metrics is served only on
	// MetricsAddr or with a token.
	MetricsToken string
}

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Dev reports whether the server runs in development mode.
func (c Config) Dev() bool { return c.Env == Development }

// HTTPS reports whether the public issuer URL is https, so cookies are
// Secure and HSTS is sent.
func (c Config) HTTPS() bool { return strings.HasPrefix(c.Issuer, "https://") }

// Load reads the configuration through getenv (os.Getenv in production;
// a map in tests). It creates the data directory and, in development only,
// the secret key file. Each section of the configuration is read by a
// function of its own; every error found is returned, joined.
func Load(getenv func(string) string) (Config, error) {
	l := &loader{getenv: getenv}
	var c Config
	l.server(&c)
	l.sessions(&c)
	l.accountLife(&c)
	l.database(&c)
	l.requests(&c)
	l.abuse(&c)
	l.notify(&c)
	l.oidc(&c)
	l.webAuthn(&c)
	l.push(&c)
	l.identity(&c)
	l.secretKey(&c)
	if c.Env == Production {
		l.production(&c)
	}
	if len(l.errs) > 0 {
		return c, errors.Join(l.errs...)
	}

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return c, fmt.Errorf("create data directory: %w", err)
	}
	// MkdirAll leaves an existing directory as it was: the data directory
	// holds the key and the database, for this user only.
	if err := os.Chmod(c.DataDir, 0o700); err != nil {
		return c, fmt.Errorf("restrict the data directory: %w", err)
	}
	if c.SecretKey == nil { // development only, checked by production
		var err error
		if c.SecretKey, err = devKey(filepath.Join(c.DataDir, "secret.key")); err != nil {
			return c, err
		}
	}
	return c, nil
}

// loader reads variables and collects what is wrong with them.
type loader struct {
	getenv func(string) string
	errs   []error
}

// get returns the variable k trimmed of spaces, or def when it is empty.
func (l *loader) get(k, def string) string {
	if v := strings.TrimSpace(l.getenv(k)); v != "" {
		return v
	}
	return def
}

// bad records an error wrapping ErrInvalid.
func (l *loader) bad(format string, a ...any) {
	l.errs = append(l.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
}

// duration reads the variable k (default def) as a duration.
func (l *loader) duration(k, def string) time.Duration {
	d, err := duration(l.get(k, def))
	if err != nil {
		l.bad("%s: %v", k, err)
	}
	return d
}

// server reads the process's own settings: environment, addresses, data
// directory, database, logging, the admin token and proxies.
func (l *loader) server(c *Config) {
	c.Env = l.get("IDLINK_ENV", Development)
	c.Addr = l.get("IDLINK_ADDR", "127.0.0.1:8080")
	c.Issuer = strings.TrimRight(l.get("IDLINK_ISSUER", "http://localhost:8080"), "/")
	c.DataDir = l.get("IDLINK_DATA_DIR", "./data")
	c.TermsVersion = l.get("IDLINK_TERMS_VERSION", "2026-01")
	c.AdminToken = l.get("IDLINK_ADMIN_TOKEN", "")
	c.LogLevel = l.get("IDLINK_LOG_LEVEL", "info")
	if c.Env != Development && c.Env != Production {
		l.bad("IDLINK_ENV must be %q or %q, not %q", Development, Production, c.Env)
	}
	c.DatabaseURL = l.get("IDLINK_DATABASE_URL", "sqlite:"+migrations.SQLitePath(c.DataDir))
	c.DemoClientKeyPath = filepath.Join(c.DataDir, "demo-client-key.pem")
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		l.bad("IDLINK_ISSUER must be an absolute http(s) URL without query or fragment, not %q", c.Issuer)
	}
	c.ShutdownTimeout = l.duration("IDLINK_SHUTDOWN_TIMEOUT", "20s")
	var err error
	if c.MaxHashes, err = strconv.Atoi(l.get("IDLINK_MAX_CONCURRENT_HASHES", "0")); err != nil || c.MaxHashes < 0 {
		l.bad("IDLINK_MAX_CONCURRENT_HASHES must be a whole number ≥ 0")
	}
	c.TrustedProxies = splitComma(l.get("IDLINK_TRUSTED_PROXIES", ""))
	c.StreamAddr = l.get("IDLINK_STREAM_ADDR", "")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.bad("IDLINK_LOG_LEVEL must be debug, info, warn or error")
	}
}

// sessions reads the browser sessions' lifetimes.
func (l *loader) sessions(c *Config) {
	c.SessionIdle = l.duration("IDLINK_SESSION_IDLE", "30m")
	c.SessionAbsolute = l.duration("IDLINK_SESSION_ABSOLUTE", "12h")
	if c.StaffLoginMaxAge = l.duration("IDLINK_STAFF_LOGIN_MAX_AGE", "12h"); c.StaffLoginMaxAge <= 0 {
		l.bad("IDLINK_STAFF_LOGIN_MAX_AGE must be a positive duration such as 12h")
	}
}

// database reads the connection pool and its server-side timeouts.
func (l *loader) database(c *Config) {
	var err error
	if c.DBMaxOpenConns, err = strconv.Atoi(l.get("IDLINK_DB_MAX_OPEN_CONNS", "20")); err != nil || c.DBMaxOpenConns < 2 || c.DBMaxOpenConns > 1000 {
		l.bad("IDLINK_DB_MAX_OPEN_CONNS must be a whole number from 2 to 1000")
	}
	if c.DBMaxIdleConns, err = strconv.Atoi(l.get("IDLINK_DB_MAX_IDLE_CONNS", strconv.Itoa(c.DBMaxOpenConns))); err != nil || c.DBMaxIdleConns < 1 || c.DBMaxIdleConns > c.DBMaxOpenConns {
		l.bad("IDLINK_DB_MAX_IDLE_CONNS must be a whole number from 1 to IDLINK_DB_MAX_OPEN_CONNS")
	}
	if c.DBStatementTimeout = l.duration("IDLINK_DB_STATEMENT_TIMEOUT", "5s"); c.DBStatementTimeout < 100*time.Millisecond {
		l.bad("IDLINK_DB_STATEMENT_TIMEOUT must be a duration of at least 100ms")
	}
	if c.DBLockTimeout = l.duration("IDLINK_DB_LOCK_TIMEOUT", "2s"); c.DBLockTimeout < 10*time.Millisecond {
		l.bad("IDLINK_DB_LOCK_TIMEOUT must be a duration of at least 10ms")
	}
}

// abuse reads the budgets of texts and emails, the wrong-code cap, whose
// address a request comes from, and how /metrics is exposed
// (docs/SECURITY.md).
func (l *loader) abuse(c *Config) {
	loadAbuse(c, l.get, l.bad)
	if _, err := web.NewClientAddresses(c.ProxyHeader, c.TrustedProxies); err != nil {
		l.bad("IDLINK_PROXY_HEADER and IDLINK_TRUSTED_PROXIES: %v", err)
	}
	if len(c.TrustedProxies) > 0 && c.ProxyHeader == "" {
		l.bad("IDLINK_TRUSTED_PROXIES needs IDLINK_PROXY_HEADER (X-Forwarded-For or Forwarded): no proxy header is read by default")
	}
}

// requests reads the request deadline and admission control.
func (l *loader) requests(c *Config) {
	var err error
	if c.RequestTimeout = l.duration("IDLINK_REQUEST_TIMEOUT", "8s"); c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 10*time.Minute {
		l.bad("IDLINK_REQUEST_TIMEOUT must be a duration from 100ms to 10m")
	}
	if c.MaxConcurrentRequests, err = strconv.Atoi(l.get("IDLINK_MAX_CONCURRENT_REQUESTS", "0")); err != nil || c.MaxConcurrentRequests < 0 {
		l.bad("IDLINK_MAX_CONCURRENT_REQUESTS must be a whole number ≥ 0")
	}
	if c.RequestQueue, err = strconv.Atoi(l.get("IDLINK_REQUEST_QUEUE", "0")); err != nil || c.RequestQueue < -1 {
		l.bad("IDLINK_REQUEST_QUEUE must be a whole number ≥ -1")
	}
	c.RequestQueueWait = l.duration("IDLINK_REQUEST_QUEUE_WAIT", "1s")
}

// accountLife reads how recent a login must be for sensitive changes and
// when unused accounts are closed.
func (l *loader) accountLife(c *Config) {
	c.RecentLogin = l.duration("IDLINK_RECENT_LOGIN", "15m")
	c.CloseUnusedAfter = l.duration("IDLINK_CLOSE_UNUSED_AFTER", "17520h")
	c.ClosureWarning = l.duration("IDLINK_CLOSURE_WARNING", "720h")
	if c.ClosureWarning <= 0 || c.ClosureWarning >= c.CloseUnusedAfter {
		l.bad("IDLINK_CLOSURE_WARNING must be a positive duration shorter than IDLINK_CLOSE_UNUSED_AFTER")
	}
}

// notify reads how texts and emails are sent.
func (l *loader) notify(c *Config) {
	c.NotifyProvider = l.get("IDLINK_NOTIFY_PROVIDER", "sandbox")
	c.NotifyAPIKey = l.get("IDLINK_NOTIFY_API_KEY", "")
	c.NotifyBaseURL = l.get("IDLINK_NOTIFY_BASE_URL", "https://api.notifications.service.gov.uk")
	switch c.NotifyProvider {
	case "sandbox":
	case "notify":
		if c.NotifyAPIKey == "" {
			l.bad("IDLINK_NOTIFY_PROVIDER=notify needs IDLINK_NOTIFY_API_KEY")
		}
	default:
		l.bad("IDLINK_NOTIFY_PROVIDER must be sandbox or notify, not %q", c.NotifyProvider)
	}
	c.NotifyTemplates = map[string]string{}
	for _, kv := range splitComma(l.get("IDLINK_NOTIFY_TEMPLATES", "")) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			l.bad("IDLINK_NOTIFY_TEMPLATES entries are kind=template-id, not %q", kv)
			continue
		}
		c.NotifyTemplates[k] = v
	}
}

// oidc reads the OpenID Connect provider's settings: the relying parties
// that may assert a login to another.
func (l *loader) oidc(c *Config) {
	c.AssertedLoginPairs = map[string][]string{}
	for _, pair := range splitComma(l.get("IDLINK_ASSERTED_LOGIN_PAIRS", "")) {
		from, to, ok := strings.Cut(pair, ">")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			l.bad("IDLINK_ASSERTED_LOGIN_PAIRS entries are from>to client ids, not %q", pair)
			continue
		}
		c.AssertedLoginPairs[from] = append(c.AssertedLoginPairs[from], to)
	}
}

// webAuthn reads the relying party of passkeys and app credentials, which
// passkeys are allowed, and how long a browser is remembered.
func (l *loader) webAuthn(c *Config) {
	if u, err := url.Parse(c.Issuer); err == nil {
		rpid, origins := u.Hostname(), u.Scheme+"://"+u.Host
		if net.ParseIP(rpid) != nil {
			// WebAuthn refuses an IP address as relying-party id. In
			// development, passkeys then work at http://localhost:PORT.
			if c.Env == Production && l.getenv("IDLINK_WEBAUTHN_RP_ID") == "" {
				l.bad("the issuer's host %s is an IP address, which WebAuthn cannot use: set IDLINK_WEBAUTHN_RP_ID to the domain", rpid)
			}
			rpid = "localhost"
			origins = "http://localhost"
			if p := u.Port(); p != "" {
				origins += ":" + p
			}
		}
		c.WebAuthnRPID = l.get("IDLINK_WEBAUTHN_RP_ID", rpid)
		c.WebAuthnOrigins = splitComma(l.get("IDLINK_WEBAUTHN_ORIGINS", origins))
	}
	c.RememberDevice = l.duration("IDLINK_REMEMBER_DEVICE_FOR", "4380h")
	c.PasskeyAAGUIDs = splitComma(l.get("IDLINK_PASSKEY_AAGUIDS", ""))
	switch v := l.get("IDLINK_REFUSE_SYNCED_PASSKEYS", "false"); v {
	case "true", "1":
		c.RefuseSyncedPasskeys = true
	case "false", "0":
	default:
		l.bad("IDLINK_REFUSE_SYNCED_PASSKEYS must be true or false")
	}
}

// push reads phone approvals' settings: the requests' lifetime and FCM.
func (l *loader) push(c *Config) {
	var err error
	if c.PushTTL, err = duration(l.get("IDLINK_PUSH_TTL", "60s")); err != nil || c.PushTTL < 10*time.Second || c.PushTTL > 10*time.Minute {
		l.bad("IDLINK_PUSH_TTL must be a duration from 10s to 10m")
	}
	c.FCMProjectID = l.get("IDLINK_FCM_PROJECT_ID", "")
	c.FCMCredentialsFile = l.get("IDLINK_FCM_CREDENTIALS_FILE", "")
	c.FCMEndpoint = l.get("IDLINK_FCM_ENDPOINT", "")
	if c.FCMEndpoint != "" && c.FCMProjectID == "" {
		l.bad("IDLINK_FCM_ENDPOINT needs IDLINK_FCM_PROJECT_ID")
	}
}

// identity reads identity proofing's settings: PDS and the evidence store.
func (l *loader) identity(c *Config) {
	c.PDSProvider = l.get("IDLINK_PDS_PROVIDER", "sandbox")
	c.PDSBaseURL = l.get("IDLINK_PDS_BASE_URL", "")
	c.PDSTokenURL = l.get("IDLINK_PDS_TOKEN_URL", "")
	c.PDSClientID = l.get("IDLINK_PDS_CLIENT_ID", "")
	c.PDSKeyFile = l.get("IDLINK_PDS_KEY_FILE", "")
	c.PDSKeyID = l.get("IDLINK_PDS_KEY_ID", "")
	switch c.PDSProvider {
	case "sandbox":
	case "fhir":
		if c.PDSBaseURL == "" || c.PDSTokenURL == "" || c.PDSClientID == "" || c.PDSKeyFile == "" || c.PDSKeyID == "" {
			l.bad("IDLINK_PDS_PROVIDER=fhir needs IDLINK_PDS_BASE_URL, IDLINK_PDS_TOKEN_URL, IDLINK_PDS_CLIENT_ID, IDLINK_PDS_KEY_FILE and IDLINK_PDS_KEY_ID")
		}
	default:
		l.bad("IDLINK_PDS_PROVIDER must be sandbox or fhir")
	}
	c.MediaDir = l.get("IDLINK_MEDIA_DIR", filepath.Join(c.DataDir, "media"))
	var err error
	if c.MediaRetention, err = duration(l.get("IDLINK_MEDIA_RETENTION", "168h")); err != nil || c.MediaRetention <= 0 {
		l.bad("IDLINK_MEDIA_RETENTION must be a positive duration")
	}
	if c.MaxUpload, err = strconv.Atoi(l.get("IDLINK_MAX_UPLOAD_MB", "64")); err != nil || c.MaxUpload < 2 || c.MaxUpload > 512 {
		l.bad("IDLINK_MAX_UPLOAD_MB must be a number of megabytes from 2 to 512")
	}
	c.MaxUpload <<= 20
}

// secretKey reads the master key, when given.
func (l *loader) secretKey(c *Config) {
	if raw := l.get("IDLINK_SECRET_KEY", ""); raw != "" {
		var err error
		if c.SecretKey, err = decodeKey(raw); err != nil {
			l.bad("IDLINK_SECRET_KEY: %v", err)
		}
	}
}

// production refuses what is only fit for development.
func (l *loader) production(c *Config) {
	if c.PDSProvider == "sandbox" {
		l.bad("production cannot use the PDS sandbox (set IDLINK_PDS_PROVIDER=fhir)")
	}
	if c.FCMEndpoint != "" && c.FCMCredentialsFile == "" {
		l.bad("production cannot send to IDLINK_FCM_ENDPOINT without IDLINK_FCM_CREDENTIALS_FILE (requests would go unauthenticated)")
	}
	if c.NotifyProvider == "sandbox" {
		l.bad("production cannot use the sandbox notification provider (set IDLINK_NOTIFY_PROVIDER=notify)")
	}
	if !c.HTTPS() {
		l.bad("production needs an https IDLINK_ISSUER, not %q", c.Issuer)
	}
	if c.SecretKey == nil {
		l.bad("production needs IDLINK_SECRET_KEY (32 random bytes, hex or base64)")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 32 {
		l.bad("IDLINK_ADMIN_TOKEN must be at least 32 characters in production")
	}
}

// FromEnvironment is Load(os.Getenv).
func FromEnvironment() (Config, error) { return Load(os.Getenv) }

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

func decodeKey(raw string) ([]byte, error) {
	if b, err := hex.DecodeString(raw); err == nil && len(b) == secrets.KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil && len(b) == secrets.KeySize {
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes, hex or base64 encoded")
}

// devKey reads the development master key from path, creating it on first
// use so that sessions and codes survive restarts of `make run`.
func devKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := decodeKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("development key %s: %w", path, err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read development key: %w", err)
	}
	k := secrets.NewKey()
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write development key: %w", err)
	}
	return k, nil
}
