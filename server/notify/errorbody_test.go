package notify

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// errorBodySeeds are the committed seed corpus of FuzzParseErrorBody: real
// Notify answers and the malformed shapes a broken proxy might return.
var errorBodySeeds = []string{
	`{"status_code":400,"errors":[{"error":"ValidationError","message":"phone_number Not a UK mobile number"}]}`,
	`{"status_code":400,"errors":[{"error":"ValidationError","message":"email_address Not a valid email address"}]}`,
	`{"status_code":400,"errors":[{"error":"BadRequestError","message":"Can't send to this recipient using a team-only API key"}]}`,
	`{"status_code":403,"errors":[{"error":"AuthError","message":"Error: Your system clock must be accurate to within 30 seconds"}]}`,
	`{"status_code":429,"errors":[{"error":"RateLimitError","message":"Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds"}]}`,
	`{"status_code":500,"errors":[{"error":"Exception","message":"Internal server error"}]}`,
	`{"status_code":400,"errors":[{"error":"A","message":"1"},{"error":"B","message":"2"},{"error":"C","message":"3"},{"error":"D","message":"4"},{"error":"E","message":"5"},{"error":"F","message":"6"}]}`,
	`{"status_code":400,"errors":[{"error":"BadRequestError","message":"line one\nline two\u0000\u2028"}]}`,
	`{"status_code":400,"errors":[{"error":"BadRequestError","message":"\xff\xfe invalid utf-8"}]}`,
	`{"status_code":"400","errors":[]}`,
	`{"errors":null}`,
	`{"errors":[null]}`,
	`{"errors":{"error":"x"}}`,
	`[]`,
	`null`,
	``,
	`<html>502 Bad Gateway</html>`,
	`{"status_code":400,"errors":[{"error":"BadRequestError","message":"` + strings.Repeat("é", 400) + `"}]}`,
}

func FuzzParseErrorBody(f *testing.F) {
	for _, s := range errorBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		eb, err := parseErrorBody(body)
		if err == nil {
			if len(eb.Errors) == 0 || len(eb.Errors) > maxAPIErrors {
				t.Fatalf("kept %d errors", len(eb.Errors))
			}
			for _, e := range eb.Errors {
				for _, s := range []string{e.Error, e.Message} {
					if len(s) > maxAPIErrorField || !utf8.ValidString(s) || hasControl(s) ||
						strings.ContainsAny(s, "\u2028\u2029") {
						t.Fatalf("unsafe field %q", s)
					}
				}
			}
			if strings.ContainsAny(eb.String(), "\r\n") {
				t.Fatalf("multi-line summary %q", eb.String())
			}
		}
		for _, status := range []int{http.StatusCreated, http.StatusBadRequest, http.StatusForbidden, http.StatusTooManyRequests, http.StatusBadGateway} {
			ierr := interpret(status, body)
			if status == http.StatusCreated && ierr == nil {
				continue
			}
			if ierr == nil {
				t.Fatalf("HTTP %d accepted", status)
			}
			if !errors.Is(ierr, ErrSendFailed) && !errors.Is(ierr, ErrInvalidRecipient) {
				t.Fatalf("HTTP %d: error %v wraps neither sentinel", status, ierr)
			}
			if status != http.StatusBadRequest && errors.Is(ierr, ErrInvalidRecipient) {
				t.Fatalf("HTTP %d mapped to an invalid recipient", status)
			}
		}
	})
}

func TestParseErrorBody(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr bool
		want    errorBody
	}{
		{name: "one error",
			body: `{"status_code":400,"errors":[{"error":"ValidationError","message":"phone_number Too many digits"}]}`,
			want: errorBody{StatusCode: 400, Errors: []apiError{{"ValidationError", "phone_number Too many digits"}}}},
		{name: "control characters replaced",
			body: `{"status_code":400,"errors":[{"error":"Bad\nRequest","message":"a\r\nb\u0000c"}]}`,
			want: errorBody{StatusCode: 400, Errors: []apiError{{"Bad Request", "a  b c"}}}},
		{name: "at most five errors",
			body: `{"errors":[{"error":"1"},{"error":"2"},{"error":"3"},{"error":"4"},{"error":"5"},{"error":"6"}]}`,
			want: errorBody{Errors: []apiError{{Error: "1"}, {Error: "2"}, {Error: "3"}, {Error: "4"}, {Error: "5"}}}},
		{name: "long message truncated on a rune boundary",
			body: `{"errors":[{"error":"E","message":"` + strings.Repeat("é", 400) + `"}]}`,
			want: errorBody{Errors: []apiError{{"E", strings.Repeat("é", maxAPIErrorField/2)}}}},
		{name: "no errors", body: `{"status_code":400,"errors":[]}`, wantErr: true},
		{name: "not json", body: `Bad Gateway`, wantErr: true},
		{name: "empty", body: ``, wantErr: true},
		{name: "wrong types", body: `{"status_code":"400","errors":"x"}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseErrorBody([]byte(tc.body))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseAPIKey(t *testing.T) {
	const sid = "26785a09-ab16-4eb0-8407-a37497a57506"
	const sec = "3d844edf-8d35-48ac-975b-e847b4f122b0"
	for _, name := range []string{"k", "my-key-with-hyphens", "test_key"} {
		gotSID, gotSec, err := parseAPIKey(name + "-" + sid + "-" + sec)
		require.NoError(t, err, name)
		require.Equal(t, sid, gotSID)
		require.Equal(t, sec, gotSec)
	}
}

func TestNewNotifyDefaults(t *testing.T) {
	n, err := NewNotify(NotifyConfig{APIKey: "k-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"})
	require.NoError(t, err)
	require.Equal(t, DefaultNotifyBaseURL, n.base)
	require.Equal(t, DefaultNotifyTimeout, n.client.Timeout)
	require.NotNil(t, n.now)
	require.Equal(t, "26785a09-ab16-4eb0-8407-a37497a57506", n.serviceID)
}

func TestNotifyCopiesTemplates(t *testing.T) {
	tpl := map[Kind]string{"login_code": "11111111-2222-3333-4444-555555555555"}
	n, err := NewNotify(NotifyConfig{APIKey: "k-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0", Templates: tpl})
	require.NoError(t, err)
	tpl["login_code"] = "changed"
	require.Equal(t, "11111111-2222-3333-4444-555555555555", n.templates["login_code"])
}
