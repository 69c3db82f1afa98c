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
	TrustedProxies  []string      // IDLINK_TRUSTED_PROXIES: comma-separated IPs or CIDRs (with IDLINK_PROXY_HEADER)
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
	// MaxUpload bounds a photo ID upload (photo and video in one form)
	// (IDLINK_MAX_UPLOAD_MB, default 64).
	MaxUpload int

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
// the secret key file.
func Load(getenv func(string) string) (Config, error) {
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		Env:            get("IDLINK_ENV", Development),
		Addr:           get("IDLINK_ADDR", "127.0.0.1:8080"),
		Issuer:         strings.TrimRight(get("IDLINK_ISSUER", "http://localhost:8080"), "/"),
		DataDir:        get("IDLINK_DATA_DIR", "./data"),
		NotifyProvider: get("IDLINK_NOTIFY_PROVIDER", "sandbox"),
		NotifyAPIKey:   get("IDLINK_NOTIFY_API_KEY", ""),
		NotifyBaseURL:  get("IDLINK_NOTIFY_BASE_URL", "https://api.notifications.service.gov.uk"),
		TermsVersion:   get("IDLINK_TERMS_VERSION", "2026-01"),
		AdminToken:     get("IDLINK_ADMIN_TOKEN", ""),
		LogLevel:       get("IDLINK_LOG_LEVEL", "info"),
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
	}

	if c.Env != Development && c.Env != Production {
		bad("IDLINK_ENV must be %q or %q, not %q", Development, Production, c.Env)
	}
	c.DatabaseURL = get("IDLINK_DATABASE_URL", "sqlite:"+migrations.SQLitePath(c.DataDir))
	c.DemoClientKeyPath = filepath.Join(c.DataDir, "demo-client-key.pem")

	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("IDLINK_ISSUER must be an absolute http(s) URL without query or fragment, not %q", c.Issuer)
	}
	var err error
	if c.SessionIdle, err = duration(get("IDLINK_SESSION_IDLE", "30m")); err != nil {
		bad("IDLINK_SESSION_IDLE: %v", err)
	}
	if c.SessionAbsolute, err = duration(get("IDLINK_SESSION_ABSOLUTE", "12h")); err != nil {
		bad("IDLINK_SESSION_ABSOLUTE: %v", err)
	}
	if c.ShutdownTimeout, err = duration(get("IDLINK_SHUTDOWN_TIMEOUT", "20s")); err != nil {
		bad("IDLINK_SHUTDOWN_TIMEOUT: %v", err)
	}
	if c.MaxHashes, err = strconv.Atoi(get("IDLINK_MAX_CONCURRENT_HASHES", "0")); err != nil || c.MaxHashes < 0 {
		bad("IDLINK_MAX_CONCURRENT_HASHES must be a whole number ≥ 0")
	}
	for _, p := range strings.Split(get("IDLINK_TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	loadAbuse(&c, get, bad)
	if _, err := web.NewClientAddresses(c.ProxyHeader, c.TrustedProxies); err != nil {
		bad("IDLINK_PROXY_HEADER and IDLINK_TRUSTED_PROXIES: %v", err)
	}
	if len(c.TrustedProxies) > 0 && c.ProxyHeader == "" {
		bad("IDLINK_TRUSTED_PROXIES needs IDLINK_PROXY_HEADER (X-Forwarded-For or Forwarded): no proxy header is read by default")
	}
	switch c.NotifyProvider {
	case "sandbox":
	case "notify":
		if c.NotifyAPIKey == "" {
			bad("IDLINK_NOTIFY_PROVIDER=notify needs IDLINK_NOTIFY_API_KEY")
		}
	default:
		bad("IDLINK_NOTIFY_PROVIDER must be sandbox or notify, not %q", c.NotifyProvider)
	}
	c.NotifyTemplates = map[string]string{}
	for _, kv := range strings.Split(get("IDLINK_NOTIFY_TEMPLATES", ""), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			bad("IDLINK_NOTIFY_TEMPLATES entries are kind=template-id, not %q", kv)
			continue
		}
		c.NotifyTemplates[k] = v
	}
	c.AssertedLoginPairs = map[string][]string{}
	for _, pair := range strings.Split(get("IDLINK_ASSERTED_LOGIN_PAIRS", ""), ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, ">")
		if !ok || strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" {
			bad("IDLINK_ASSERTED_LOGIN_PAIRS entries are from>to client ids, not %q", pair)
			continue
		}
		c.AssertedLoginPairs[strings.TrimSpace(from)] = append(c.AssertedLoginPairs[strings.TrimSpace(from)], strings.TrimSpace(to))
	}
	if u, err := url.Parse(c.Issuer); err == nil {
		rpid, origins := u.Hostname(), u.Scheme+"://"+u.Host
		if net.ParseIP(rpid) != nil {
			// WebAuthn refuses an IP address as relying-party id. In
			// development, passkeys then work at http://localhost:PORT.
			if c.Env == Production && getenv("IDLINK_WEBAUTHN_RP_ID") == "" {
				bad("the issuer's host %s is an IP address, which WebAuthn cannot use: set IDLINK_WEBAUTHN_RP_ID to the domain", rpid)
			}
			rpid = "localhost"
			origins = "http://localhost"
			if p := u.Port(); p != "" {
				origins += ":" + p
			}
		}
		c.WebAuthnRPID = get("IDLINK_WEBAUTHN_RP_ID", rpid)
		c.WebAuthnOrigins = splitComma(get("IDLINK_WEBAUTHN_ORIGINS", origins))
	}
	if c.RememberDevice, err = duration(get("IDLINK_REMEMBER_DEVICE_FOR", "4380h")); err != nil {
		bad("IDLINK_REMEMBER_DEVICE_FOR: %v", err)
	}
	c.PasskeyAAGUIDs = splitComma(get("IDLINK_PASSKEY_AAGUIDS", ""))
	if c.PushTTL, err = duration(get("IDLINK_PUSH_TTL", "60s")); err != nil || c.PushTTL < 10*time.Second || c.PushTTL > 10*time.Minute {
		bad("IDLINK_PUSH_TTL must be a duration from 10s to 10m")
	}
	c.PDSProvider = get("IDLINK_PDS_PROVIDER", "sandbox")
	c.PDSBaseURL = get("IDLINK_PDS_BASE_URL", "")
	c.PDSTokenURL = get("IDLINK_PDS_TOKEN_URL", "")
	c.PDSClientID = get("IDLINK_PDS_CLIENT_ID", "")
	c.PDSKeyFile = get("IDLINK_PDS_KEY_FILE", "")
	c.PDSKeyID = get("IDLINK_PDS_KEY_ID", "")
	switch c.PDSProvider {
	case "sandbox":
	case "fhir":
		if c.PDSBaseURL == "" || c.PDSTokenURL == "" || c.PDSClientID == "" || c.PDSKeyFile == "" || c.PDSKeyID == "" {
			bad("IDLINK_PDS_PROVIDER=fhir needs IDLINK_PDS_BASE_URL, IDLINK_PDS_TOKEN_URL, IDLINK_PDS_CLIENT_ID, IDLINK_PDS_KEY_FILE and IDLINK_PDS_KEY_ID")
		}
	default:
		bad("IDLINK_PDS_PROVIDER must be sandbox or fhir")
	}
	c.MediaDir = get("IDLINK_MEDIA_DIR", filepath.Join(c.DataDir, "media"))
	if c.MediaRetention, err = duration(get("IDLINK_MEDIA_RETENTION", "168h")); err != nil || c.MediaRetention <= 0 {
		bad("IDLINK_MEDIA_RETENTION must be a positive duration")
	}
	if c.MaxUpload, err = strconv.Atoi(get("IDLINK_MAX_UPLOAD_MB", "64")); err != nil || c.MaxUpload < 2 || c.MaxUpload > 512 {
		bad("IDLINK_MAX_UPLOAD_MB must be a number of megabytes from 2 to 512")
	}
	c.MaxUpload <<= 20
	c.StreamAddr = get("IDLINK_STREAM_ADDR", "")
	c.FCMProjectID = get("IDLINK_FCM_PROJECT_ID", "")
	c.FCMCredentialsFile = get("IDLINK_FCM_CREDENTIALS_FILE", "")
	c.FCMEndpoint = get("IDLINK_FCM_ENDPOINT", "")
	if c.FCMEndpoint != "" && c.FCMProjectID == "" {
		bad("IDLINK_FCM_ENDPOINT needs IDLINK_FCM_PROJECT_ID")
	}
	switch v := get("IDLINK_REFUSE_SYNCED_PASSKEYS", "false"); v {
	case "true", "1":
		c.RefuseSyncedPasskeys = true
	case "false", "0":
	default:
		bad("IDLINK_REFUSE_SYNCED_PASSKEYS must be true or false")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("IDLINK_LOG_LEVEL must be debug, info, warn or error")
	}

	if raw := get("IDLINK_SECRET_KEY", ""); raw != "" {
		if c.SecretKey, err = decodeKey(raw); err != nil {
			bad("IDLINK_SECRET_KEY: %v", err)
		}
	}

	if c.Env == Production {
		if c.PDSProvider == "sandbox" {
			bad("production cannot use the PDS sandbox (set IDLINK_PDS_PROVIDER=fhir)")
		}
		if c.FCMEndpoint != "" && c.FCMCredentialsFile == "" {
			bad("production cannot send to IDLINK_FCM_ENDPOINT without IDLINK_FCM_CREDENTIALS_FILE (requests would go unauthenticated)")
		}
		if c.NotifyProvider == "sandbox" {
			bad("production cannot use the sandbox notification provider (set IDLINK_NOTIFY_PROVIDER=notify)")
		}
		if !c.HTTPS() {
			bad("production needs an https IDLINK_ISSUER, not %q", c.Issuer)
		}
		if c.SecretKey == nil {
			bad("production needs IDLINK_SECRET_KEY (32 random bytes, hex or base64)")
		}
		if c.AdminToken != "" && len(c.AdminToken) < 32 {
			bad("IDLINK_ADMIN_TOKEN must be at least 32 characters in production")
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return c, fmt.Errorf("create data directory: %w", err)
	}
	// MkdirAll leaves an existing directory as it was: the data directory
	// holds the key and the database, for this user only.
	if err := os.Chmod(c.DataDir, 0o700); err != nil {
		return c, fmt.Errorf("restrict the data directory: %w", err)
	}
	if c.SecretKey == nil { // development only, checked above
		if c.SecretKey, err = devKey(filepath.Join(c.DataDir, "secret.key")); err != nil {
			return c, err
		}
	}
	return c, nil
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
