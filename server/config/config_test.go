package config

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{"IDLINK_DATA_DIR": dir}))
	require.NoError(t, err)
	require.Equal(t, Development, c.Env)
	require.Equal(t, "127.0.0.1:8080", c.Addr)
	require.Equal(t, "http://localhost:8080", c.Issuer)
	require.Equal(t, "sqlite:"+dir+"/idlink.db", c.DatabaseURL)
	require.Len(t, c.SecretKey, secrets.KeySize)

	again, err := Load(env(map[string]string{"IDLINK_DATA_DIR": dir}))
	require.NoError(t, err)
	require.Equal(t, c.SecretKey, again.SecretKey, "the development key persists across restarts")
}

func TestProductionRefusals(t *testing.T) {
	key := hex.EncodeToString(secrets.NewKey())
	good := map[string]string{
		"IDLINK_ENV":             Production,
		"IDLINK_ISSUER":          "https://login.example.org",
		"IDLINK_SECRET_KEY":      key,
		"IDLINK_NOTIFY_PROVIDER": "notify",
		"IDLINK_NOTIFY_API_KEY":  "k",
		"IDLINK_PDS_PROVIDER":    "fhir",
		"IDLINK_PDS_BASE_URL":    "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4",
		"IDLINK_PDS_TOKEN_URL":   "https://int.api.service.nhs.uk/oauth2/token",
		"IDLINK_PDS_CLIENT_ID":   "api-key",
		"IDLINK_PDS_KEY_FILE":    "/etc/idlink/pds.pem",
		"IDLINK_PDS_KEY_ID":      "key-1",
	}
	tests := []struct {
		name    string
		change  map[string]string
		wantErr string
	}{
		{"complete", nil, ""},
		{"sandbox sms", map[string]string{"IDLINK_NOTIFY_PROVIDER": "sandbox"}, "sandbox notification provider"},
		{"plain http issuer", map[string]string{"IDLINK_ISSUER": "http://login.example.org"}, "https IDLINK_ISSUER"},
		{"missing key", map[string]string{"IDLINK_SECRET_KEY": ""}, "needs IDLINK_SECRET_KEY"},
		{"short key", map[string]string{"IDLINK_SECRET_KEY": "abcd"}, "must be 32 bytes"},
		{"unknown env", map[string]string{"IDLINK_ENV": "staging"}, "IDLINK_ENV must be"},
		{"notify without api key", map[string]string{"IDLINK_NOTIFY_API_KEY": ""}, "needs IDLINK_NOTIFY_API_KEY"},
		{"bad issuer", map[string]string{"IDLINK_ISSUER": "login.example.org"}, "absolute http(s) URL"},
		{"bad duration", map[string]string{"IDLINK_SESSION_IDLE": "-1m"}, "IDLINK_SESSION_IDLE"},
		{"bad templates", map[string]string{"IDLINK_NOTIFY_TEMPLATES": "login_code"}, "kind=template-id"},
		{"IP issuer without a WebAuthn RP id", map[string]string{"IDLINK_ISSUER": "https://192.0.2.10"}, "IDLINK_WEBAUTHN_RP_ID"},
		{"PDS sandbox", map[string]string{"IDLINK_PDS_PROVIDER": "sandbox"}, "PDS sandbox"},
		{"PDS client incomplete", map[string]string{"IDLINK_PDS_KEY_FILE": ""}, "IDLINK_PDS_KEY_FILE"},
		{"FCM endpoint without credentials", map[string]string{"IDLINK_FCM_PROJECT_ID": "p", "IDLINK_FCM_ENDPOINT": "http://fake"}, "IDLINK_FCM_CREDENTIALS_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{"IDLINK_DATA_DIR": t.TempDir()}
			for k, v := range good {
				m[k] = v
			}
			for k, v := range tc.change {
				m[k] = v
			}
			c, err := Load(env(m))
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.True(t, c.HTTPS())
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.True(t, strings.Contains(err.Error(), tc.wantErr), err.Error())
		})
	}
}

func TestWebAuthnDefaults(t *testing.T) {
	tests := []struct {
		issuer, rpid, origin string
	}{
		{"http://localhost:8080", "localhost", "http://localhost:8080"},
		{"https://login.example.org", "login.example.org", "https://login.example.org"},
		{"http://127.0.0.1:9000", "localhost", "http://localhost:9000"}, // development only
	}
	for _, tc := range tests {
		c, err := Load(env(map[string]string{"IDLINK_DATA_DIR": t.TempDir(), "IDLINK_ISSUER": tc.issuer}))
		require.NoError(t, err)
		require.Equal(t, tc.rpid, c.WebAuthnRPID, tc.issuer)
		require.Equal(t, []string{tc.origin}, c.WebAuthnOrigins, tc.issuer)
	}
}

func TestNotifyTemplates(t *testing.T) {
	c, err := Load(env(map[string]string{"IDLINK_DATA_DIR": t.TempDir(), "IDLINK_NOTIFY_TEMPLATES": "login_code=abc, signup_code=def"}))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"login_code": "abc", "signup_code": "def"}, c.NotifyTemplates)
}

func TestFaultAndPoolLimits(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{"IDLINK_DATA_DIR": dir}))
	require.NoError(t, err)
	require.Equal(t, 20, c.DBMaxOpenConns)
	require.Equal(t, 20, c.DBMaxIdleConns)
	require.Equal(t, "5s", c.DBStatementTimeout.String())
	require.Equal(t, "2s", c.DBLockTimeout.String())
	require.Equal(t, "8s", c.RequestTimeout.String())
	require.Equal(t, "1s", c.RequestQueueWait.String())

	c, err = Load(env(map[string]string{"IDLINK_DATA_DIR": dir, "IDLINK_DB_MAX_OPEN_CONNS": "10", "IDLINK_DB_MAX_IDLE_CONNS": "4",
		"IDLINK_REQUEST_TIMEOUT": "3s", "IDLINK_MAX_CONCURRENT_REQUESTS": "12", "IDLINK_REQUEST_QUEUE": "-1"}))
	require.NoError(t, err)
	require.Equal(t, 10, c.DBMaxOpenConns)
	require.Equal(t, 4, c.DBMaxIdleConns)
	require.Equal(t, "3s", c.RequestTimeout.String())
	require.Equal(t, 12, c.MaxConcurrentRequests)
	require.Equal(t, -1, c.RequestQueue)

	for k, v := range map[string]string{
		"IDLINK_DB_MAX_OPEN_CONNS":    "1",
		"IDLINK_DB_MAX_IDLE_CONNS":    "50",
		"IDLINK_DB_STATEMENT_TIMEOUT": "1ms",
		"IDLINK_DB_LOCK_TIMEOUT":      "soon",
		"IDLINK_REQUEST_TIMEOUT":      "1h",
		"IDLINK_REQUEST_QUEUE":        "-2",
	} {
		_, err := Load(env(map[string]string{"IDLINK_DATA_DIR": dir, k: v}))
		require.ErrorIs(t, err, ErrInvalid, k)
		require.Contains(t, err.Error(), k)
	}
}

// Every sending budget has a variable and a documented default.
func TestSendingLimits(t *testing.T) {
	c, err := Load(env(map[string]string{"IDLINK_DATA_DIR": t.TempDir()}))
	require.NoError(t, err)
	require.Equal(t, sending.DefaultLimits(), c.Sending)
	require.Equal(t, ratelimit.Rate{N: 10, Per: time.Hour}, c.CodeGuesses)
	require.Equal(t, 10*time.Second, c.NotifyDeadline)
	require.Empty(t, c.ProxyHeader, "no proxy header is read by default")

	c, err = Load(env(map[string]string{"IDLINK_DATA_DIR": t.TempDir(),
		"IDLINK_SMS_SIGNUP_NUMBERS": "2/12h", "IDLINK_SMS_SIGNUP_CODES": "4/24h", "IDLINK_SMS_PER_ACCOUNT": "20/15m",
		"IDLINK_SMS_PER_NEW_NUMBER": "3/1h", "IDLINK_SMS_PER_VERIFIED_NUMBER": "30/15m", "IDLINK_SMS_PER_ADDRESS": "5/1h",
		"IDLINK_SMS_PER_NETWORK": "50/1h", "IDLINK_SMS_CEILING_PER_MINUTE": "100", "IDLINK_SMS_CEILING_PER_HOUR": "2000",
		"IDLINK_SMS_SIGNUP_SHARE": "25", "IDLINK_SMS_COUNTRIES": "ie, fr", "IDLINK_EMAIL_PER_RECIPIENT": "3/15m",
		"IDLINK_EMAIL_PER_ADDRESS": "10/1h", "IDLINK_CODE_GUESSES": "6/1h", "IDLINK_NOTIFY_DEADLINE": "5s",
		"IDLINK_PROXY_HEADER": "Forwarded", "IDLINK_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
	}))
	require.NoError(t, err)
	require.Equal(t, ratelimit.Rate{N: 2, Per: 12 * time.Hour}, c.Sending.SignupNumbers)
	require.Equal(t, ratelimit.Rate{N: 50, Per: time.Hour}, c.Sending.Network)
	require.Equal(t, 25, c.Sending.SignupShare)
	require.Equal(t, []string{"IE", "FR"}, c.Sending.Countries)
	require.Equal(t, ratelimit.Rate{N: 6, Per: time.Hour}, c.CodeGuesses)
	require.Equal(t, "Forwarded", c.ProxyHeader)

	for name, v := range map[string]string{
		"IDLINK_SMS_PER_ACCOUNT": "many", "IDLINK_SMS_SIGNUP_SHARE": "101", "IDLINK_SMS_COUNTRIES": "XX",
		"IDLINK_CODE_GUESSES": "0/1h", "IDLINK_NOTIFY_DEADLINE": "2m", "IDLINK_METRICS_TOKEN": "short",
		"IDLINK_PROXY_HEADER": "X-Real-IP", "IDLINK_TRUSTED_PROXIES": "10.0.0.1",
	} {
		_, err := Load(env(map[string]string{"IDLINK_DATA_DIR": t.TempDir(), name: v}))
		require.ErrorIs(t, err, ErrInvalid, name)
		require.Contains(t, err.Error(), name)
	}
}

func TestDataDirectoryIsPrivate(t *testing.T) {
	dir := t.TempDir() + "/data"
	require.NoError(t, os.MkdirAll(dir, 0o755))
	_, err := Load(env(map[string]string{"IDLINK_DATA_DIR": dir}))
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}
