package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/notify"
)

// notifyFake imitates GOV.UK Notify, switchable between accepting
// ("ok"), failing ("500"), rate limiting ("429", with Retry-After) and
// hanging ("hang"). It keeps the texts it accepted.
type notifyFake struct {
	srv *httptest.Server

	mu         sync.Mutex
	mode       string
	retryAfter string
	calls      int
	codes      map[string]string // phone → newest code accepted
	release    chan struct{}
}

const (
	fakeAPIKey = "test-key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
	fakeTpl    = "11111111-2222-3333-4444-555555555555"
)

func newNotifyFake(t *testing.T) *notifyFake {
	t.Helper()
	f := &notifyFake{mode: "ok", codes: map[string]string{}, release: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.release)
		f.srv.Close()
	})
	return f
}

func (f *notifyFake) set(mode, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.retryAfter = mode, retryAfter
}

func (f *notifyFake) code(phone string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes[phone]
}

func (f *notifyFake) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *notifyFake) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		PhoneNumber     string            `json:"phone_number"`
		Personalisation map[string]string `json:"personalisation"`
	}
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.calls++
	mode, retryAfter := f.mode, f.retryAfter
	f.mu.Unlock()
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"status_code": status, "errors": []map[string]string{{"error": code, "message": "test"}}})
	}
	switch mode {
	case "500":
		fail(http.StatusInternalServerError, "Exception")
		return
	case "429":
		fail(http.StatusTooManyRequests, "RateLimitError")
		return
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	if body.PhoneNumber != "" {
		f.mu.Lock()
		f.codes[body.PhoneNumber] = body.Personalisation["code"]
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"id":"740e5834-3a29-46b4-9a6f-16142fde533a"}`)
}

// sender is a real Notify client talking to the fake, with short
// attempts so that a hang is cut short within a test's patience.
func (f *notifyFake) sender(t *testing.T) notify.Sender {
	t.Helper()
	templates := map[notify.Kind]string{}
	for _, k := range []notify.Kind{"signup_code", "login_code", "reset_code", "signup_verify_email", "signup_existing_account",
		"reset_email", "password_changed", "code_guess_limit", "device_enrolled", "push_reported"} {
		templates[k] = fakeTpl
	}
	n, err := notify.NewNotify(notify.NotifyConfig{BaseURL: f.srv.URL, APIKey: fakeAPIKey, Templates: templates,
		AttemptTimeout: 300 * time.Millisecond, Backoff: 20 * time.Millisecond})
	require.NoError(t, err)
	return n
}
