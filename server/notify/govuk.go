package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultNotifyBaseURL is the GOV.UK Notify API endpoint used when
// NotifyConfig.BaseURL is empty.
const DefaultNotifyBaseURL = "https://api.notifications.service.gov.uk"

// DefaultNotifyTimeout bounds each request to Notify when
// NotifyConfig.HTTPClient is nil.
const DefaultNotifyTimeout = 10 * time.Second

// maxResponseBody is the most of a Notify response body that is read.
const maxResponseBody = 64 << 10

// NotifyConfig configures a Notify client.
type NotifyConfig struct {
	// BaseURL is the API root; DefaultNotifyBaseURL when empty.
	BaseURL string
	// APIKey is the key from the Notify admin site, in the form
	// {key_name}-{service_id}-{secret_key}.
	APIKey string
	// Templates maps each Kind to the id of its Notify template. Kinds
	// that are never sent through Notify may be left out; sending one fails.
	Templates map[Kind]string
	// HTTPClient makes the requests; when nil, a client with a
	// DefaultNotifyTimeout timeout.
	HTTPClient *http.Client
	// Now is the clock for token issue times; time.Now when nil.
	Now func() time.Time
	// MaxAttempts bounds the attempts of one Send (DefaultMaxAttempts
	// when zero): a network failure, a timeout, a 5xx or a rate-limit
	// answer is tried again, with back-off, while the context's deadline
	// leaves time.
	MaxAttempts int
	// AttemptTimeout bounds each attempt (DefaultAttemptTimeout when
	// zero), so that a provider that hangs leaves time to try again.
	AttemptTimeout time.Duration
	// Backoff is the wait before the second attempt, doubled for each
	// further one, with jitter (DefaultBackoff when zero). A Retry-After
	// answer replaces it.
	Backoff time.Duration
}

// Retry defaults of the Notify client.
const (
	DefaultMaxAttempts    = 3
	DefaultAttemptTimeout = 4 * time.Second
	DefaultBackoff        = 250 * time.Millisecond
	// maxRetryAfter bounds what a Retry-After answer is believed.
	maxRetryAfter = time.Hour
)

// Notify is a Sender that sends SMS and email through the GOV.UK Notify REST
// API v2. It is safe for concurrent use.
type Notify struct {
	base      string
	serviceID string
	signer    jose.Signer
	templates map[Kind]string
	client    *http.Client
	now       func() time.Time
	attempts  int
	timeout   time.Duration
	backoff   time.Duration
}

var _ Sender = (*Notify)(nil)

// ErrBadConfig is returned by NewNotify for an unusable configuration.
var ErrBadConfig = errors.New("invalid Notify configuration")

// NewNotify checks cfg and returns a Notify client. A malformed API key,
// base URL or template id is an error wrapping ErrBadConfig; the error never
// contains the key.
func NewNotify(cfg NotifyConfig) (*Notify, error) {
	serviceID, secret, err := parseAPIKey(cfg.APIKey)
	if err != nil {
		return nil, err
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultNotifyBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: base URL must be an http(s) URL without query", ErrBadConfig)
	}
	templates := make(map[Kind]string, len(cfg.Templates))
	for kind, id := range cfg.Templates {
		if kind == "" {
			return nil, fmt.Errorf("%w: template for an empty kind", ErrBadConfig)
		}
		if !isUUID(id) {
			return nil, fmt.Errorf("%w: template id for kind %s is not a UUID", ErrBadConfig, kind)
		}
		templates[kind] = id
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("%w: token signer: %w", ErrBadConfig, err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultNotifyTimeout}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Notify{
		base:      strings.TrimRight(base, "/"),
		serviceID: serviceID,
		signer:    signer,
		templates: templates,
		client:    client,
		now:       now,
		attempts:  orDefault(cfg.MaxAttempts, DefaultMaxAttempts),
		timeout:   orDefault(cfg.AttemptTimeout, DefaultAttemptTimeout),
		backoff:   orDefault(cfg.Backoff, DefaultBackoff),
	}, nil
}

// parseAPIKey splits a Notify API key, {key_name}-{service_id}-{secret_key},
// from the end: the last two parts are UUIDs of 36 characters each.
func parseAPIKey(key string) (serviceID, secret string, err error) {
	const uuidLen = 36
	malformed := fmt.Errorf("%w: malformed API key: want {key_name}-{service_id}-{secret_key}", ErrBadConfig)
	// name, '-', service id, '-', secret
	if len(key) < 1+1+uuidLen+1+uuidLen {
		return "", "", malformed
	}
	secret = key[len(key)-uuidLen:]
	rest := key[:len(key)-uuidLen]
	if !strings.HasSuffix(rest, "-") {
		return "", "", malformed
	}
	rest = rest[:len(rest)-1]
	serviceID = rest[len(rest)-uuidLen:]
	name := rest[:len(rest)-uuidLen]
	if !strings.HasSuffix(name, "-") || len(name) < 2 || !isUUID(serviceID) || !isUUID(secret) {
		return "", "", malformed
	}
	return serviceID, secret, nil
}

// isUUID reports whether s has the 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// notifyRequest is the body of POST /v2/notifications/{sms,email}.
type notifyRequest struct {
	PhoneNumber     string            `json:"phone_number,omitempty"`
	EmailAddress    string            `json:"email_address,omitempty"`
	TemplateID      string            `json:"template_id"`
	Personalisation map[string]string `json:"personalisation"`
	Reference       string            `json:"reference,omitempty"`
}

// Send posts m to Notify. A template must be configured for m.Kind. The
// recipient rejected by Notify yields ErrInvalidRecipient; every other
// failure yields ErrSendFailed, with Notify's error code and message kept in
// the error text. A failure that another attempt may cure (a network
// failure, an attempt's timeout, a 5xx, a per-minute rate limit) is tried
// again with back-off, honouring Retry-After, while ctx's deadline leaves
// time; when the provider asked us to wait longer than that, RetryAfter
// reports how long.
func (n *Notify) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	templateID, ok := n.templates[m.Kind]
	if !ok {
		return fmt.Errorf("%w: no Notify template configured for kind %s", ErrSendFailed, m.Kind)
	}
	req := notifyRequest{
		TemplateID:      templateID,
		Personalisation: map[string]string{"body": m.Text},
		Reference:       m.Reference,
	}
	if m.Link != "" {
		req.Personalisation["link"] = m.Link
	}
	if m.Code != "" {
		req.Personalisation["code"] = m.Code
	}
	var path string
	switch m.Channel {
	case SMS:
		req.PhoneNumber = m.To
		path = "/v2/notifications/sms"
	case Email:
		req.EmailAddress = m.To
		path = "/v2/notifications/email"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: encode %s request: %w", ErrSendFailed, m.Kind, err)
	}
	wait := n.backoff
	for attempt := 1; ; attempt++ {
		err := n.attempt(ctx, path, body, m)
		var again *retryable
		if err == nil || !errors.As(err, &again) {
			return err
		}
		if attempt >= n.attempts {
			return again.final()
		}
		pause := jitter(wait)
		if again.after > 0 {
			pause = again.after
		}
		// Another attempt needs the pause and a little time of its own.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < pause+100*time.Millisecond {
			return again.final()
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: send %s %s to Notify: %w", ErrSendFailed, m.Channel, m.Kind, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// attempt makes one request. A failure another attempt may cure is a
// *retryable.
func (n *Notify) attempt(ctx context.Context, path string, body []byte, m Message) error {
	token, err := n.token()
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrSendFailed, m.Channel, m.Kind, err)
	}
	actx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, n.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: build %s request: %w", ErrSendFailed, m.Kind, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "idlink-notify")
	resp, err := n.client.Do(hreq)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%w: send %s %s to Notify: %w", ErrSendFailed, m.Channel, m.Kind, ctxErr)
		}
		return &retryable{err: fmt.Errorf("%w: send %s %s to Notify: %w", ErrSendFailed, m.Channel, m.Kind, err)}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return &retryable{err: fmt.Errorf("%w: read Notify answer to %s %s (HTTP %d): %w", ErrSendFailed, m.Channel, m.Kind, resp.StatusCode, err)}
	}
	if err := interpret(resp.StatusCode, respBody); err != nil {
		err = fmt.Errorf("send %s %s: %w", m.Channel, m.Kind, err)
		if retryStatus(resp.StatusCode, respBody) {
			return &retryable{err: err, after: retryAfter(resp.Header.Get("Retry-After"), n.now())}
		}
		return err
	}
	return nil
}

// retryable is a failed attempt that another may cure; after is how long
// the provider asked us to wait (0: not said).
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// final is the error Send returns when it stops trying: the last
// attempt's, carrying the provider's Retry-After.
func (r *retryable) final() error {
	if r.after > 0 {
		return &waitError{err: r.err, after: r.after}
	}
	return r.err
}

// waitError is a failure after which the provider asked us to wait.
type waitError struct {
	err   error
	after time.Duration
}

func (w *waitError) Error() string { return w.err.Error() }
func (w *waitError) Unwrap() error { return w.err }

// RetryAfter reports how long the provider asked us to wait before trying
// again (its Retry-After), when a Send failed with such an answer.
func RetryAfter(err error) (time.Duration, bool) {
	var w *waitError
	if errors.As(err, &w) {
		return w.after, true
	}
	return 0, false
}

// retryStatus reports whether an answer may succeed when tried again: a
// server error or a per-minute rate limit (not the daily send limit).
func retryStatus(status int, body []byte) bool {
	switch {
	case status >= 500:
		return true
	case status == http.StatusTooManyRequests:
		eb, err := parseErrorBody(body)
		if err != nil {
			return true
		}
		for _, e := range eb.Errors {
			if e.Error == "TooManyRequestsError" {
				return false // the daily limit: not before tomorrow
			}
		}
		return true
	}
	return false
}

// retryAfter reads a Retry-After header: seconds or an HTTP date. It
// returns 0 when there is none or it makes no sense.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// token returns a fresh JWT for the Authorization header: HS256 over
// {"iss": service id, "iat": now}, as Notify requires (it rejects tokens
// whose iat is more than 30 seconds away from its clock).
func (n *Notify) token() (string, error) {
	claims := struct {
		Issuer   string `json:"iss"`
		IssuedAt int64  `json:"iat"`
	}{n.serviceID, n.now().Unix()}
	tok, err := jwt.Signed(n.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign Notify token: %w", err)
	}
	return tok, nil
}

// interpret turns Notify's answer into nil (201 with a notification id) or
// an error wrapping ErrInvalidRecipient or ErrSendFailed.
func interpret(status int, body []byte) error {
	if status == http.StatusCreated {
		var ok struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &ok); err != nil || ok.ID == "" {
			return fmt.Errorf("%w: Notify answered 201 without a notification id", ErrSendFailed)
		}
		return nil
	}
	eb, err := parseErrorBody(body)
	if err != nil {
		return fmt.Errorf("%w: Notify answered HTTP %d with an unreadable body", ErrSendFailed, status)
	}
	if status == http.StatusBadRequest && eb.rejectsRecipient() {
		return fmt.Errorf("%w: Notify answered HTTP %d: %s", ErrInvalidRecipient, status, eb)
	}
	what := "error"
	switch {
	case status == http.StatusForbidden:
		what = "authentication error"
	case status == http.StatusTooManyRequests:
		what = "rate limit"
	case status >= 500:
		what = "server error"
	}
	return fmt.Errorf("%w: Notify %s, HTTP %d: %s", ErrSendFailed, what, status, eb)
}

// Bounds on what parseErrorBody keeps, so that a hostile or broken answer
// cannot flood the logs through an error message.
const (
	maxAPIErrors     = 5
	maxAPIErrorField = 300
)

// apiError is one entry of a Notify error answer.
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// errorBody is a Notify error answer:
// {"status_code": 400, "errors": [{"error": "BadRequestError", "message": "..."}]}.
type errorBody struct {
	StatusCode int        `json:"status_code"`
	Errors     []apiError `json:"errors"`
}

// errNoErrors is returned by parseErrorBody for JSON that lists no error.
var errNoErrors = errors.New("no errors listed")

// parseErrorBody decodes a Notify error answer. It keeps at most
// maxAPIErrors entries, truncates each field to maxAPIErrorField bytes of
// valid UTF-8 and replaces control characters, so the result is safe to put
// in an error message and a log line.
func parseErrorBody(body []byte) (errorBody, error) {
	var raw errorBody
	if err := json.Unmarshal(body, &raw); err != nil {
		return errorBody{}, fmt.Errorf("decode Notify error body: %w", err)
	}
	if len(raw.Errors) == 0 {
		return errorBody{}, errNoErrors
	}
	out := errorBody{StatusCode: raw.StatusCode}
	for i, e := range raw.Errors {
		if i == maxAPIErrors {
			break
		}
		out.Errors = append(out.Errors, apiError{
			Error:   sanitize(e.Error, maxAPIErrorField),
			Message: sanitize(e.Message, maxAPIErrorField),
		})
	}
	return out, nil
}

// sanitize returns s as valid UTF-8 of at most n bytes, with control
// characters replaced by spaces.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		if b.Len()+len(string(r)) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// String renders the errors as "Code: message; Code: message".
func (eb errorBody) String() string {
	parts := make([]string, 0, len(eb.Errors))
	for _, e := range eb.Errors {
		parts = append(parts, e.Error+": "+e.Message)
	}
	return strings.Join(parts, "; ")
}

// rejectsRecipient reports whether a 400 answer says the phone number or
// email address is invalid: a ValidationError or BadRequestError whose
// message names the recipient field ("phone_number Not a UK mobile number",
// "email_address Not a valid email address") and is not a schema complaint
// about the request itself (a missing or mistyped field).
func (eb errorBody) rejectsRecipient() bool {
	for _, e := range eb.Errors {
		if e.Error != "ValidationError" && e.Error != "BadRequestError" {
			continue
		}
		msg := strings.ToLower(e.Message)
		names := strings.Contains(msg, "phone_number") || strings.Contains(msg, "phone number") ||
			strings.Contains(msg, "email_address") || strings.Contains(msg, "email address")
		schema := strings.Contains(msg, "required property") || strings.Contains(msg, "is not of type")
		if names && !schema {
			return true
		}
	}
	return false
}
