package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/notify"
)

// stepClock returns a clock that advances one second per call, safe for
// concurrent use.
func stepClock(start time.Time) func() time.Time {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

func TestSandboxSendListLatest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		sb := notify.NewSandbox(db, stepClock(start))

		msgs := []notify.Message{
			{Channel: notify.SMS, To: "+447700900001", Kind: "login_code", Text: "Your code is 111111", Code: "111111"},
			{Channel: notify.Email, To: "ann@example.com", Kind: "signup_verify_email", Text: "Confirm your email", Link: "https://idlink.test/v/abc"},
			{Channel: notify.SMS, To: "+447700900001", Kind: "login_code", Text: "Your code is 222222", Code: "222222", Reference: "r-2"},
			{Channel: notify.SMS, To: "+447700900002", Kind: "login_code", Text: "Your code is 333333", Code: "333333"},
			{Channel: notify.Email, To: "ann@example.com", Kind: "password_changed", Text: "Your password was changed"},
		}
		for _, m := range msgs {
			require.NoError(t, sb.Send(ctx, m))
		}

		all, err := sb.List(ctx, 10)
		require.NoError(t, err)
		require.Len(t, all, len(msgs))
		for i, e := range all {
			m := msgs[len(msgs)-1-i]
			require.Equal(t, m.Channel, e.Channel, "entry %d", i)
			require.Equal(t, m.To, e.Recipient, "entry %d", i)
			require.Equal(t, m.Kind, e.Kind, "entry %d", i)
			require.Equal(t, m.Text, e.Text, "entry %d", i)
			require.Equal(t, m.Link, e.Link, "entry %d", i)
			require.Equal(t, m.Code, e.Code, "entry %d", i)
			require.Len(t, e.ID, 26)
			require.Equal(t, start.Add(time.Duration(len(msgs)-i)*time.Second), e.CreatedAt, "entry %d", i)
		}

		two, err := sb.List(ctx, 2)
		require.NoError(t, err)
		require.Equal(t, all[:2], two)

		dflt, err := sb.List(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, all, dflt)

		tests := []struct {
			name      string
			recipient string
			kind      notify.Kind
			wantCode  string
			wantLink  string
			wantErr   error
		}{
			{name: "newest of two", recipient: "+447700900001", kind: "login_code", wantCode: "222222"},
			{name: "other number", recipient: "+447700900002", kind: "login_code", wantCode: "333333"},
			{name: "email link", recipient: "ann@example.com", kind: "signup_verify_email", wantLink: "https://idlink.test/v/abc"},
			{name: "unknown recipient", recipient: "+447700900009", kind: "login_code", wantErr: notify.ErrNotFound},
			{name: "known recipient other kind", recipient: "+447700900001", kind: "reset_code", wantErr: notify.ErrNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e, err := sb.Latest(ctx, tc.recipient, tc.kind)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
					return
				}
				require.NoError(t, err)
				require.Equal(t, tc.recipient, e.Recipient)
				require.Equal(t, tc.kind, e.Kind)
				require.Equal(t, tc.wantCode, e.Code)
				require.Equal(t, tc.wantLink, e.Link)
			})
		}
	})
}

func TestSandboxValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		sb := notify.NewSandbox(db, nil)
		tests := []struct {
			name string
			msg  notify.Message
			want error
		}{
			{"unknown channel", notify.Message{Channel: "fax", To: "+447700900001", Kind: "login_code"}, notify.ErrSendFailed},
			{"empty channel", notify.Message{To: "+447700900001", Kind: "login_code"}, notify.ErrSendFailed},
			{"empty kind", notify.Message{Channel: notify.SMS, To: "+447700900001"}, notify.ErrSendFailed},
			{"kind with newline", notify.Message{Channel: notify.SMS, To: "+447700900001", Kind: "a\nb"}, notify.ErrSendFailed},
			{"empty sms recipient", notify.Message{Channel: notify.SMS, Kind: "login_code"}, notify.ErrInvalidRecipient},
			{"empty email recipient", notify.Message{Channel: notify.Email, Kind: "reset_email"}, notify.ErrInvalidRecipient},
			{"national phone number", notify.Message{Channel: notify.SMS, To: "07700900001", Kind: "login_code"}, notify.ErrInvalidRecipient},
			{"phone number with letters", notify.Message{Channel: notify.SMS, To: "+44770090000a", Kind: "login_code"}, notify.ErrInvalidRecipient},
			{"phone number too long", notify.Message{Channel: notify.SMS, To: "+4477009000011234", Kind: "login_code"}, notify.ErrInvalidRecipient},
			{"email address by sms", notify.Message{Channel: notify.SMS, To: "ann@example.com", Kind: "login_code"}, notify.ErrInvalidRecipient},
			{"email without at", notify.Message{Channel: notify.Email, To: "ann.example.com", Kind: "reset_email"}, notify.ErrInvalidRecipient},
			{"email with two ats", notify.Message{Channel: notify.Email, To: "ann@b@example.com", Kind: "reset_email"}, notify.ErrInvalidRecipient},
			{"email with space", notify.Message{Channel: notify.Email, To: "ann @example.com", Kind: "reset_email"}, notify.ErrInvalidRecipient},
			{"email domain without dot", notify.Message{Channel: notify.Email, To: "ann@example", Kind: "reset_email"}, notify.ErrInvalidRecipient},
			{"phone number by email", notify.Message{Channel: notify.Email, To: "+447700900001", Kind: "reset_email"}, notify.ErrInvalidRecipient},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := sb.Send(ctx, tc.msg)
				require.ErrorIs(t, err, tc.want)
				require.ErrorIs(t, tc.msg.Validate(), tc.want)
			})
		}
		all, err := sb.List(ctx, 100)
		require.NoError(t, err)
		require.Empty(t, all, "nothing invalid is stored")
	})
}

func TestSandboxCancelledContext(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		sb := notify.NewSandbox(db, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := sb.Send(ctx, notify.Message{Channel: notify.SMS, To: "+447700900001", Kind: "login_code", Text: "x"})
		require.ErrorIs(t, err, notify.ErrSendFailed)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestSandboxConcurrentSends(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		sb := notify.NewSandbox(db, nil)
		const n = 50
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- sb.Send(ctx, notify.Message{
					Channel: notify.SMS,
					To:      fmt.Sprintf("+4477009%05d", i),
					Kind:    "signup_code",
					Text:    fmt.Sprintf("Your code is %06d", i),
					Code:    fmt.Sprintf("%06d", i),
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}

		all, err := sb.List(ctx, 2*n)
		require.NoError(t, err)
		require.Len(t, all, n)
		var got, want []string
		ids := map[string]bool{}
		for i, e := range all {
			got = append(got, e.Recipient)
			want = append(want, fmt.Sprintf("+4477009%05d", i))
			ids[e.ID] = true
		}
		sort.Strings(got)
		require.Equal(t, want, got)
		require.Len(t, ids, n, "ids are unique")
		for i := 1; i < len(all); i++ {
			require.False(t, all[i].CreatedAt.After(all[i-1].CreatedAt), "newest first")
		}
	})
}

func TestEntryJSON(t *testing.T) {
	e := notify.Entry{
		ID: "id1", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Channel: notify.Email,
		Recipient: "ann@example.com", Kind: "reset_email", Text: "Reset", Link: "https://x.test/r", Code: "",
	}
	b, err := json.Marshal(e)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"id1","created_at":"2026-01-02T03:04:05Z","channel":"email",
		"recipient":"ann@example.com","kind":"reset_email","text":"Reset","link":"https://x.test/r","code":""}`, string(b))
}
