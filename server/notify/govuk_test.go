package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/notify"
)

const (
	testServiceID = "26785a09-ab16-4eb0-8407-a37497a57506"
	testSecret    = "3d844edf-8d35-48ac-975b-e847b4f122b0"
	testAPIKey    = "idlink-test-key-" + testServiceID + "-" + testSecret

	tplLoginCode   = "11111111-2222-3333-4444-555555555555"
	tplResetEmail  = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	tplSignupEmail = "0f0f0f0f-1e1e-2d2d-3c3c-4b4b4b4b4b4b"
)

var testTemplates = map[notify.Kind]string{
	"login_code":          tplLoginCode,
	"reset_email":         tplResetEmail,
	"signup_verify_email": tplSignupEmail,
}

// received is one request the fake Notify accepted.
type received struct {
	Path string
	Body map[string]any
}

// fakeNotify imitates the GOV.UK Notify API: it authenticates each request
// as Notify does and answers 201, or what respond says once authentication
// passed.
type fakeNotify struct {
	srv     *httptest.Server
	secret  string
	respond func(w http.ResponseWriter, r *http.Request) bool // true when it answered

	mu   sync.Mutex
	reqs []received
}

func newFakeNotify(t *testing.T, respond func(w http.ResponseWriter, r *http.Request) bool) *fakeNotify {
	t.Helper()
	f := &fakeNotify{secret: testSecret, respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNotify) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

func writeNotifyError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status_code": status,
		"errors":      []map[string]string{{"error": code, "message": msg}},
	})
}

func (f *fakeNotify) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeNotifyError(w, http.StatusMethodNotAllowed, "BadRequestError", "method "+r.Method)
		return
	}
	if r.URL.Path != "/v2/notifications/sms" && r.URL.Path != "/v2/notifications/email" {
		writeNotifyError(w, http.StatusNotFound, "BadRequestError", "no route "+r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeNotifyError(w, http.StatusBadRequest, "BadRequestError", "content type "+ct)
		return
	}
	if err := verifyToken(r.Header.Get("Authorization"), testServiceID, f.secret, time.Now()); err != nil {
		writeNotifyError(w, http.StatusForbidden, "AuthError", err.Error())
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeNotifyError(w, http.StatusBadRequest, "BadRequestError", "read body: "+err.Error())
		return
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		writeNotifyError(w, http.StatusBadRequest, "BadRequestError", "Invalid JSON supplied in POST data")
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, received{Path: r.URL.Path, Body: body})
	f.mu.Unlock()
	if f.respond != nil && f.respond(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"id":"740e5834-3a29-46b4-9a6f-16142fde533a","reference":null,
		"content":{"body":"x","from_number":"GOVUK"},"uri":"https://api.notifications.service.gov.uk/v2/notifications/740e5834-3a29-46b4-9a6f-16142fde533a",
		"template":{"id":"f33517ff-2a88-4f6e-b855-c550268ce08a","version":1,"uri":"https://api.notifications.service.gov.uk/v2/template/f33517ff-2a88-4f6e-b855-c550268ce08a"}}`)
}

// verifyToken checks a bearer token the way Notify does: HS256 only, the
// issuer is the service id, the signature is made with the secret key (its
// string bytes), and iat is present and within 30 seconds of now.
func verifyToken(header, serviceID, secret string, now time.Time) error {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return errors.New("Unauthorized: authentication token must be provided")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		return fmt.Errorf("Invalid token: %v", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].Algorithm != string(jose.HS256) {
		return errors.New("Invalid token: algorithm")
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); typ != "JWT" {
		return fmt.Errorf("Invalid token: typ %q", typ)
	}
	var unverified map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return fmt.Errorf("Invalid token: %v", err)
	}
	if unverified["iss"] != serviceID {
		return errors.New("Invalid token: service not found")
	}
	var claims map[string]any
	if err := tok.Claims([]byte(secret), &claims); err != nil {
		return errors.New("Invalid token: API key not found")
	}
	if len(claims) != 2 {
		return fmt.Errorf("Invalid token: want only iss and iat, got %v", claims)
	}
	iat, ok := claims["iat"].(float64)
	if !ok {
		return errors.New("Invalid token: token does not have a valid iat")
	}
	if d := now.Unix() - int64(iat); d > 30 || d < -30 {
		return errors.New("Error: Your system clock must be accurate to within 30 seconds")
	}
	return nil
}

func newClient(t *testing.T, baseURL string, mod func(*notify.NotifyConfig)) *notify.Notify {
	t.Helper()
	cfg := notify.NotifyConfig{BaseURL: baseURL, APIKey: testAPIKey, Templates: testTemplates}
	if mod != nil {
		mod(&cfg)
	}
	n, err := notify.NewNotify(cfg)
	require.NoError(t, err)
	return n
}

func TestNotifySend(t *testing.T) {
	tests := []struct {
		name     string
		msg      notify.Message
		wantPath string
		wantBody map[string]any
	}{
		{
			name: "sms with code and reference",
			msg: notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "login_code",
				Text: "Your IDLink code is 123456", Code: "123456", Reference: "req-42"},
			wantPath: "/v2/notifications/sms",
			wantBody: map[string]any{
				"phone_number": "+447700900123",
				"template_id":  tplLoginCode,
				"personalisation": map[string]any{
					"body": "Your IDLink code is 123456",
					"code": "123456",
				},
				"reference": "req-42",
			},
		},
		{
			name: "email with link",
			msg: notify.Message{Channel: notify.Email, To: "ann@example.com", Kind: "reset_email",
				Text: "Reset your password", Link: "https://idlink.test/reset/abc"},
			wantPath: "/v2/notifications/email",
			wantBody: map[string]any{
				"email_address": "ann@example.com",
				"template_id":   tplResetEmail,
				"personalisation": map[string]any{
					"body": "Reset your password",
					"link": "https://idlink.test/reset/abc",
				},
			},
		},
		{
			name:     "email with text only",
			msg:      notify.Message{Channel: notify.Email, To: "bob@example.org", Kind: "signup_verify_email", Text: "Hello"},
			wantPath: "/v2/notifications/email",
			wantBody: map[string]any{
				"email_address":   "bob@example.org",
				"template_id":     tplSignupEmail,
				"personalisation": map[string]any{"body": "Hello"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNotify(t, nil)
			n := newClient(t, f.srv.URL+"/", nil) // a trailing slash is tolerated
			require.NoError(t, n.Send(context.Background(), tc.msg))
			reqs := f.requests()
			require.Len(t, reqs, 1)
			require.Equal(t, tc.wantPath, reqs[0].Path)
			require.Equal(t, tc.wantBody, reqs[0].Body)
		})
	}
}

func TestNotifyErrorMapping(t *testing.T) {
	sms := notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "login_code", Text: "code 1", Code: "1"}
	email := notify.Message{Channel: notify.Email, To: "ann@example.com", Kind: "reset_email", Text: "reset", Link: "https://x.test/r"}
	huge := strings.Repeat("A", 1<<20)
	tests := []struct {
		name     string
		msg      notify.Message
		status   int
		body     string
		want     error
		wantText []string
	}{
		{"invalid mobile number", sms, 400,
			`{"status_code":400,"errors":[{"error":"ValidationError","message":"phone_number Not a UK mobile number"}]}`,
			notify.ErrInvalidRecipient, []string{"ValidationError", "phone_number Not a UK mobile number"}},
		{"too many digits", sms, 400,
			`{"status_code":400,"errors":[{"error":"ValidationError","message":"phone_number Too many digits"}]}`,
			notify.ErrInvalidRecipient, []string{"Too many digits"}},
		{"invalid email address", email, 400,
			`{"status_code":400,"errors":[{"error":"ValidationError","message":"email_address Not a valid email address"}]}`,
			notify.ErrInvalidRecipient, []string{"ValidationError", "email_address Not a valid email address"}},
		{"bad request naming the number", sms, 400,
			`{"status_code":400,"errors":[{"error":"BadRequestError","message":"phone_number Not a valid country prefix"}]}`,
			notify.ErrInvalidRecipient, []string{"BadRequestError"}},
		{"team-only key", sms, 400,
			`{"status_code":400,"errors":[{"error":"BadRequestError","message":"Can't send to this recipient using a team-only API key"}]}`,
			notify.ErrSendFailed, []string{"BadRequestError", "team-only API key"}},
		{"missing personalisation", email, 400,
			`{"status_code":400,"errors":[{"error":"BadRequestError","message":"Missing personalisation: code"}]}`,
			notify.ErrSendFailed, []string{"Missing personalisation: code"}},
		{"schema error on the recipient field", sms, 400,
			`{"status_code":400,"errors":[{"error":"ValidationError","message":"phone_number is a required property"}]}`,
			notify.ErrSendFailed, []string{"required property"}},
		{"auth error", sms, 403,
			`{"status_code":403,"errors":[{"error":"AuthError","message":"Invalid token: API key not found"}]}`,
			notify.ErrSendFailed, []string{"AuthError", "API key not found", "403"}},
		{"rate limit", sms, 429,
			`{"status_code":429,"errors":[{"error":"RateLimitError","message":"Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds"}]}`,
			notify.ErrSendFailed, []string{"RateLimitError", "429"}},
		{"daily limit", email, 429,
			`{"status_code":429,"errors":[{"error":"TooManyRequestsError","message":"Exceeded send limits (250000) for today"}]}`,
			notify.ErrSendFailed, []string{"TooManyRequestsError"}},
		{"server error", sms, 500,
			`{"status_code":500,"errors":[{"error":"Exception","message":"Internal server error"}]}`,
			notify.ErrSendFailed, []string{"Exception", "Internal server error", "500"}},
		{"gateway html", sms, 502, `<html><body>Bad gateway</body></html>`,
			notify.ErrSendFailed, []string{"502", "unreadable"}},
		{"400 with empty errors", sms, 400, `{"status_code":400,"errors":[]}`,
			notify.ErrSendFailed, []string{"400"}},
		{"unexpected status", sms, 404, `{"result":"error","message":"Not found"}`,
			notify.ErrSendFailed, []string{"404"}},
		{"201 without id", sms, 201, `{"reference":null}`,
			notify.ErrSendFailed, []string{"201"}},
		{"201 not json", sms, 201, `created`,
			notify.ErrSendFailed, []string{"201"}},
		{"200 instead of 201", sms, 200, `{"id":"740e5834-3a29-46b4-9a6f-16142fde533a"}`,
			notify.ErrSendFailed, []string{"200"}},
		{"huge error body", sms, 400,
			`{"status_code":400,"errors":[{"error":"BadRequestError","message":"` + huge + `"}]}`,
			notify.ErrSendFailed, []string{"400"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNotify(t, func(w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
				return true
			})
			// One attempt: how answers are retried is TestNotifyRetries's.
			n := newClient(t, f.srv.URL, func(c *notify.NotifyConfig) { c.MaxAttempts = 1 })
			err := n.Send(context.Background(), tc.msg)
			require.Error(t, err)
			require.ErrorIs(t, err, tc.want)
			other := notify.ErrSendFailed
			if tc.want == notify.ErrSendFailed {
				other = notify.ErrInvalidRecipient
			}
			require.NotErrorIs(t, err, other)
			for _, s := range tc.wantText {
				require.Contains(t, err.Error(), s)
			}
			require.NotContains(t, err.Error(), testSecret)
			require.NotContains(t, err.Error(), tc.msg.To, "no personal data in errors")
			require.Less(t, len(err.Error()), 4096, "error text is bounded")
			require.Len(t, f.requests(), 1)
		})
	}
}

func TestNotifyAuthentication(t *testing.T) {
	msg := notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "login_code", Text: "code 1", Code: "1"}
	tests := []struct {
		name string
		mod  func(*notify.NotifyConfig)
		want string
	}{
		{"clock an hour slow", func(c *notify.NotifyConfig) {
			c.Now = func() time.Time { return time.Now().Add(-time.Hour) }
		}, "30 seconds"},
		{"clock an hour fast", func(c *notify.NotifyConfig) {
			c.Now = func() time.Time { return time.Now().Add(time.Hour) }
		}, "30 seconds"},
		{"wrong secret", func(c *notify.NotifyConfig) {
			c.APIKey = "idlink-" + testServiceID + "-00000000-0000-0000-0000-000000000000"
		}, "API key not found"},
		{"wrong service", func(c *notify.NotifyConfig) {
			c.APIKey = "idlink-00000000-0000-0000-0000-000000000000-" + testSecret
		}, "service not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNotify(t, nil)
			n := newClient(t, f.srv.URL, tc.mod)
			err := n.Send(context.Background(), msg)
			require.ErrorIs(t, err, notify.ErrSendFailed)
			require.Contains(t, err.Error(), "AuthError")
			require.Contains(t, err.Error(), tc.want)
			require.Empty(t, f.requests())
		})
	}
}

func TestNotifyNetworkFailures(t *testing.T) {
	msg := notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "login_code", Text: "code 1", Code: "1"}

	t.Run("server gone", func(t *testing.T) {
		f := newFakeNotify(t, nil)
		n := newClient(t, f.srv.URL, nil)
		f.srv.Close()
		err := n.Send(context.Background(), msg)
		require.ErrorIs(t, err, notify.ErrSendFailed)
	})

	slow := func(t *testing.T) *fakeNotify {
		release := make(chan struct{})
		f := newFakeNotify(t, func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return false
		})
		t.Cleanup(func() { close(release) }) // runs before the server closes
		return f
	}

	t.Run("client timeout", func(t *testing.T) {
		f := slow(t)
		n := newClient(t, f.srv.URL, func(c *notify.NotifyConfig) {
			c.HTTPClient = &http.Client{Timeout: 100 * time.Millisecond}
		})
		err := n.Send(context.Background(), msg)
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.NotContains(t, err.Error(), testSecret)
	})

	t.Run("context deadline", func(t *testing.T) {
		f := slow(t)
		n := newClient(t, f.srv.URL, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := n.Send(ctx, msg)
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("context cancelled before sending", func(t *testing.T) {
		f := newFakeNotify(t, nil)
		n := newClient(t, f.srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := n.Send(ctx, msg)
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.ErrorIs(t, err, context.Canceled)
		require.Empty(t, f.requests())
	})
}

func TestNotifyRejectsBeforeSending(t *testing.T) {
	tests := []struct {
		name     string
		msg      notify.Message
		want     error
		wantText string
	}{
		{"no template for kind", notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "password_changed", Text: "x"},
			notify.ErrSendFailed, "password_changed"},
		{"invalid phone number", notify.Message{Channel: notify.SMS, To: "07700900123", Kind: "login_code", Text: "x"},
			notify.ErrInvalidRecipient, "E.164"},
		{"empty recipient", notify.Message{Channel: notify.Email, Kind: "reset_email", Text: "x"},
			notify.ErrInvalidRecipient, "recipient"},
		{"unknown channel", notify.Message{Channel: "pager", To: "+447700900123", Kind: "login_code", Text: "x"},
			notify.ErrSendFailed, "channel"},
		{"empty kind", notify.Message{Channel: notify.SMS, To: "+447700900123", Text: "x"},
			notify.ErrSendFailed, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNotify(t, nil)
			n := newClient(t, f.srv.URL, nil)
			err := n.Send(context.Background(), tc.msg)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.wantText)
			require.Empty(t, f.requests())
		})
	}
}

func TestNewNotifyConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  notify.NotifyConfig
		ok   bool
	}{
		{"valid key", notify.NotifyConfig{APIKey: testAPIKey}, true},
		{"valid key, single-word name, upper-case hex", notify.NotifyConfig{APIKey: "live-" + strings.ToUpper(testServiceID) + "-" + testSecret}, true},
		{"no templates at all", notify.NotifyConfig{APIKey: testAPIKey, Templates: nil}, true},
		{"empty key", notify.NotifyConfig{}, false},
		{"secret only", notify.NotifyConfig{APIKey: testSecret}, false},
		{"no key name", notify.NotifyConfig{APIKey: testServiceID + "-" + testSecret}, false},
		{"empty key name", notify.NotifyConfig{APIKey: "-" + testServiceID + "-" + testSecret}, false},
		{"missing separator", notify.NotifyConfig{APIKey: "name-" + testServiceID + testSecret}, false},
		{"secret not a uuid", notify.NotifyConfig{APIKey: "name-" + testServiceID + "-3d844edf-8d35-48ac-975b-e847b4f122bZ"}, false},
		{"service id not a uuid", notify.NotifyConfig{APIKey: "name-26785a09xab16-4eb0-8407-a37497a57506-" + testSecret}, false},
		{"trailing newline", notify.NotifyConfig{APIKey: testAPIKey + "\n"}, false},
		{"truncated secret", notify.NotifyConfig{APIKey: testAPIKey[:len(testAPIKey)-1]}, false},
		{"bad base URL", notify.NotifyConfig{APIKey: testAPIKey, BaseURL: "ftp://example.com"}, false},
		{"base URL without host", notify.NotifyConfig{APIKey: testAPIKey, BaseURL: "https://"}, false},
		{"template id not a uuid", notify.NotifyConfig{APIKey: testAPIKey, Templates: map[notify.Kind]string{"login_code": "login"}}, false},
		{"template for empty kind", notify.NotifyConfig{APIKey: testAPIKey, Templates: map[notify.Kind]string{"": tplLoginCode}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := notify.NewNotify(tc.cfg)
			if tc.ok {
				require.NoError(t, err)
				require.NotNil(t, n)
				return
			}
			require.ErrorIs(t, err, notify.ErrBadConfig)
			require.Nil(t, n)
			if len(tc.cfg.APIKey) >= 36 {
				require.NotContains(t, err.Error(), tc.cfg.APIKey[len(tc.cfg.APIKey)-36:], "the secret never appears in errors")
			}
		})
	}
}

func TestNotifyConcurrentSends(t *testing.T) {
	f := newFakeNotify(t, nil)
	n := newClient(t, f.srv.URL, nil)
	const count = 20
	errs := make(chan error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- n.Send(context.Background(), notify.Message{
				Channel: notify.SMS, To: fmt.Sprintf("+4477009%05d", i), Kind: "login_code",
				Text: "code", Code: fmt.Sprintf("%06d", i),
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, f.requests(), count)
}

// A provider outage: server errors, rate limits and hangs are tried again
// within the caller's deadline, Retry-After is honoured, and what cannot
// succeed (the daily limit, a refused recipient) is tried once.
func TestNotifyRetries(t *testing.T) {
	sms := notify.Message{Channel: notify.SMS, To: "+447700900123", Kind: "login_code", Text: "code 1", Code: "1"}
	fast := func(c *notify.NotifyConfig) {
		c.Backoff = 10 * time.Millisecond
		c.AttemptTimeout = 200 * time.Millisecond
	}
	failing := func(n int, status int, retryAfter, code string) *fakeNotify {
		var mu sync.Mutex
		left := n
		return newFakeNotify(t, func(w http.ResponseWriter, r *http.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			if left == 0 {
				return false
			}
			left--
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			writeNotifyError(w, status, code, "try later")
			return true
		})
	}

	t.Run("500 then accepted", func(t *testing.T) {
		f := failing(2, 500, "", "Exception")
		n := newClient(t, f.srv.URL, fast)
		require.NoError(t, n.Send(context.Background(), sms))
		require.Len(t, f.requests(), 3)
	})
	t.Run("500 every time", func(t *testing.T) {
		f := failing(10, 500, "", "Exception")
		n := newClient(t, f.srv.URL, fast)
		err := n.Send(context.Background(), sms)
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.Len(t, f.requests(), notify.DefaultMaxAttempts)
		_, ok := notify.RetryAfter(err)
		require.False(t, ok)
	})
	t.Run("429 with a short Retry-After is waited for", func(t *testing.T) {
		f := failing(1, 429, "1", "RateLimitError")
		n := newClient(t, f.srv.URL, fast)
		start := time.Now()
		require.NoError(t, n.Send(context.Background(), sms))
		require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After: 1 was honoured")
		require.Len(t, f.requests(), 2)
	})
	t.Run("429 with a Retry-After beyond the deadline is reported", func(t *testing.T) {
		f := failing(10, 429, "120", "RateLimitError")
		n := newClient(t, f.srv.URL, fast)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := n.Send(ctx, sms)
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.Less(t, time.Since(start), time.Second, "no waiting for what cannot come in time")
		after, ok := notify.RetryAfter(err)
		require.True(t, ok)
		require.Equal(t, 2*time.Minute, after)
		require.Len(t, f.requests(), 1)
	})
	t.Run("the daily limit is not retried", func(t *testing.T) {
		f := failing(10, 429, "", "TooManyRequestsError")
		n := newClient(t, f.srv.URL, fast)
		require.ErrorIs(t, n.Send(context.Background(), sms), notify.ErrSendFailed)
		require.Len(t, f.requests(), 1)
	})
	t.Run("a refused recipient is not retried", func(t *testing.T) {
		f := failing(10, 400, "", "ValidationError")
		f.respond = func(w http.ResponseWriter, r *http.Request) bool {
			writeNotifyError(w, 400, "ValidationError", "phone_number Not a UK mobile number")
			return true
		}
		n := newClient(t, f.srv.URL, fast)
		require.ErrorIs(t, n.Send(context.Background(), sms), notify.ErrInvalidRecipient)
		require.Len(t, f.requests(), 1)
	})
	t.Run("a hang is cut short and tried again", func(t *testing.T) {
		var mu sync.Mutex
		hung := false
		release := make(chan struct{})
		f := newFakeNotify(t, func(w http.ResponseWriter, r *http.Request) bool {
			mu.Lock()
			first := !hung
			hung = true
			mu.Unlock()
			if first {
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return true
			}
			return false
		})
		t.Cleanup(func() { close(release) })
		n := newClient(t, f.srv.URL, fast)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		require.NoError(t, n.Send(ctx, sms))
		require.Len(t, f.requests(), 2)
	})
	t.Run("a hang past the deadline fails in time", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeNotify(t, func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return true
		})
		t.Cleanup(func() { close(release) })
		n := newClient(t, f.srv.URL, fast)
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		start := time.Now()
		require.ErrorIs(t, n.Send(ctx, sms), notify.ErrSendFailed)
		require.Less(t, time.Since(start), 1500*time.Millisecond)
	})
}
