package push_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
)

var ctx = context.Background()

func req(account string) push.Request {
	return push.Request{AccountID: account, ClientName: "Example GP", Browser: "Firefox", OS: "Windows", IP: "192.0.2.7"}
}

func TestApproveOverWebSocket(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, envOptions{})
		d := e.addDevice(t, "acct-1", "token-1")
		phone := e.connect(t, d)

		a, err := e.svc.Create(ctx, req("acct-1"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, a.Number, 10)
		require.LessOrEqual(t, a.Number, 99)

		m := phone.next(t, push.MsgApprovalRequest)
		v := *m.Approval
		require.Equal(t, a.ID, v.ID)
		require.Equal(t, "Example GP", v.ClientName)
		require.Equal(t, "Firefox", v.Browser)
		require.Equal(t, a.Nonce, v.Nonce)
		phone.ack(v.ID)
		eventually(t, func() bool { return e.audit.has("push.delivered") }, "delivery audited")
		ev, _ := e.audit.find("push.delivered")
		require.Equal(t, "websocket", ev.Detail["via"])

		watched := make(chan push.Approval, 1)
		go func() {
			w, _ := e.svc.Watch(ctx, "acct-1", a.ID, time.Minute)
			watched <- w
		}()

		got, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
		require.NoError(t, err)
		require.Equal(t, push.StatusApproved, got.Status)
		require.Equal(t, push.StatusApproved, (<-watched).Status, "the browser's watcher learns the outcome")
		require.Equal(t, push.MsgApprovalClosed, phone.next(t, push.MsgApprovalClosed).Type)
		require.Empty(t, e.sender.Wakes(), "an acknowledged socket delivery needs no FCM")

		// The answer and the approval are single use.
		_, err = e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
		require.ErrorIs(t, err, push.ErrNotPending)
		require.Equal(t, 1, e.verify.Calls(), "a replay never reaches the verifier")
		require.NoError(t, e.svc.Consume(ctx, "acct-1", a.ID))
		require.ErrorIs(t, e.svc.Consume(ctx, "acct-1", a.ID), push.ErrNotPending)
		require.True(t, e.audit.has("push.approved"))
	})
}

func TestFCMWhenNoSocket(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, envOptions{})
		d := e.addDevice(t, "acct-1", "token-1")
		a, err := e.svc.Create(ctx, req("acct-1"))
		require.NoError(t, err)
		eventually(t, func() bool { return len(e.sender.Wakes()) == 1 }, "the phone is woken by FCM")
		require.Equal(t, "token-1:"+a.ID, e.sender.Wakes()[0])

		// The woken app fetches the request and approves it.
		pending, err := e.svc.Pending(ctx, "acct-1")
		require.NoError(t, err)
		require.Len(t, pending, 1)
		v := pending[0].View()
		_, err = e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
		require.NoError(t, err)
	})
}

func TestUnacknowledgedSocketFallsBackToFCM(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{})
	d := e.addDevice(t, "acct-1", "token-1")
	phone := e.connect(t, d)
	a, err := e.svc.Create(ctx, req("acct-1"))
	require.NoError(t, err)
	phone.next(t, push.MsgApprovalRequest) // received but never acknowledged
	eventually(t, func() bool { return len(e.sender.Wakes()) == 1 }, "FCM after the ack timeout")
	r, err := e.svc.Result(ctx, "acct-1", a.ID)
	require.NoError(t, err)
	require.Equal(t, push.StatusPending, r.Status)
}

func TestUndeliverable(t *testing.T) {
	cases := map[string]struct {
		token    string
		noSender bool
		prep     func(*sender)
		audit    string
	}{
		"no socket and no push token": {token: ""},
		"no fcm configured":           {token: "token-1", noSender: true},
		"provider fails":              {token: "token-1", prep: func(s *sender) { s.fail = true }, audit: "push.delivery_failed"},
		"dead token":                  {token: "dead", prep: func(s *sender) { s.dead["dead"] = true }, audit: "push.delivery_failed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			db := dbtest.SQLite(t)
			e := newEnv(t, db, envOptions{noSender: tc.noSender})
			if tc.prep != nil {
				tc.prep(e.sender)
			}
			d := e.addDevice(t, "acct-1", tc.token)
			a, err := e.svc.Create(ctx, req("acct-1"))
			require.NoError(t, err)
			w, err := e.svc.Watch(ctx, "acct-1", a.ID, time.Second)
			require.NoError(t, err)
			require.Equal(t, push.StatusUndeliverable, w.Status)
			// The fallback is audited just after the request closes.
			eventually(t, func() bool { return e.audit.has("push.fallback") }, "fallback audited")
			ev, _ := e.audit.find("push.fallback")
			require.Equal(t, "undeliverable", ev.Detail["reason"])
			if tc.audit != "" {
				require.True(t, e.audit.has(tc.audit))
			}
			if tc.token == "dead" {
				got, err := e.devices.Get(ctx, d.ID)
				require.NoError(t, err)
				require.Empty(t, got.PushToken, "an unregistered token is cleared")
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, envOptions{})
		start := func(t *testing.T, account string) (push.Approval, push.View) {
			t.Helper()
			e.addDevice(t, account, "tok-"+account)
			a, err := e.svc.Create(ctx, req(account))
			require.NoError(t, err)
			return a, a.View()
		}
		t.Run("wrong number closes the request", func(t *testing.T) {
			a, v := start(t, "acct-mismatch")
			d := e.mustDevice(t, "acct-mismatch")
			wrong := 10 + (a.Number-10+1)%90
			_, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: wrong, Assertion: assertion(v, wrong)})
			require.ErrorIs(t, err, push.ErrNumberMismatch)
			_, err = e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
			require.ErrorIs(t, err, push.ErrNotPending, "one attempt only")
			r, _ := e.svc.Result(ctx, "acct-mismatch", a.ID)
			require.Equal(t, push.StatusMismatched, r.Status)
			require.True(t, e.audit.has("push.number_mismatch"))
		})
		t.Run("assertion over another number does not verify", func(t *testing.T) {
			a, v := start(t, "acct-badsig")
			d := e.mustDevice(t, "acct-badsig")
			other := 10 + (a.Number-10+1)%90
			_, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, other)})
			require.ErrorIs(t, err, push.ErrAssertion)
			r, _ := e.svc.Result(ctx, "acct-badsig", a.ID)
			require.Equal(t, push.StatusFailed, r.Status)
			require.ErrorIs(t, e.svc.Consume(ctx, "acct-badsig", a.ID), push.ErrNotPending)
		})
		t.Run("deny", func(t *testing.T) {
			a, v := start(t, "acct-deny")
			d := e.mustDevice(t, "acct-deny")
			got, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionDeny})
			require.NoError(t, err)
			require.Equal(t, push.StatusDenied, got.Status)
			require.ErrorIs(t, e.svc.Consume(ctx, "acct-deny", a.ID), push.ErrNotPending)
			_, paused, err := e.svc.Paused(ctx, "acct-deny")
			require.NoError(t, err)
			require.False(t, paused, "a plain no does not pause approvals")
		})
		t.Run("this wasn't me pauses approvals for an hour", func(t *testing.T) {
			_, v := start(t, "acct-report")
			d := e.mustDevice(t, "acct-report")
			got, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionReport})
			require.NoError(t, err)
			require.Equal(t, push.StatusReported, got.Status)
			require.Contains(t, e.alerts.got, v.ID, "the person is alerted")
			ev, ok := e.audit.find("push.reported")
			require.True(t, ok)
			require.False(t, ev.Success)
			_, err = e.svc.Create(ctx, req("acct-report"))
			require.ErrorIs(t, err, push.ErrPaused)
			e.clock.Add(61 * time.Minute)
			_, err = e.svc.Create(ctx, req("acct-report"))
			require.NoError(t, err, "the pause ends")
			e.clock.Add(-61 * time.Minute)
		})
		t.Run("expiry", func(t *testing.T) {
			a, v := start(t, "acct-expire")
			d := e.mustDevice(t, "acct-expire")
			e.clock.Add(push.DefaultTTL + time.Second)
			defer e.clock.Add(-push.DefaultTTL - time.Second)
			_, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
			require.ErrorIs(t, err, push.ErrExpired)
			r, _ := e.svc.Result(ctx, "acct-expire", a.ID)
			require.Equal(t, push.StatusExpired, r.Status)
			_, err = e.svc.Create(ctx, req("acct-expire"))
			require.NoError(t, err, "an expired request no longer blocks a new one")
		})
		t.Run("another account's device cannot answer", func(t *testing.T) {
			_, v := start(t, "acct-owner")
			e.addDevice(t, "acct-other", "")
			other := e.mustDevice(t, "acct-other")
			_, err := e.svc.Answer(ctx, other, v.ID, push.Answer{Decision: push.DecisionDeny})
			require.ErrorIs(t, err, push.ErrNotFound)
		})
		t.Run("removed device", func(t *testing.T) {
			a, v := start(t, "acct-removed")
			d := e.mustDevice(t, "acct-removed")
			phone := e.connect(t, d)
			require.NoError(t, e.devices.Remove(ctx, "acct-removed", d.ID))
			e.svc.DeviceRemoved(ctx, d.ID)
			eventually(t, func() bool { return len(phone.closeCodes()) > 0 }, "socket closed at once")
			require.Equal(t, push.ClosePolicy, phone.closeCodes()[0])
			_, err := e.svc.Answer(ctx, d, v.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(v, a.Number)})
			require.ErrorIs(t, err, push.ErrDeviceRemoved)
			_, err = e.svc.Create(ctx, req("acct-removed"))
			require.True(t, errors.Is(err, push.ErrNoDevice) || errors.Is(err, push.ErrPending))
		})
		t.Run("bad input", func(t *testing.T) {
			_, v := start(t, "acct-input")
			d := e.mustDevice(t, "acct-input")
			for _, ans := range []push.Answer{{Decision: "maybe"}, {Decision: push.DecisionApprove, Number: 7, Assertion: []byte("x")},
				{Decision: push.DecisionApprove, Number: 42}} {
				_, err := e.svc.Answer(ctx, d, v.ID, ans)
				require.ErrorIs(t, err, push.ErrInvalid)
			}
			r, _ := e.svc.Result(ctx, "acct-input", v.ID)
			require.Equal(t, push.StatusPending, r.Status, "malformed answers change nothing")
		})
	})
}

// mustDevice returns the account's first device.
func (e *env) mustDevice(t *testing.T, account string) device.Device {
	t.Helper()
	list, err := e.devices.ListForAccount(ctx, account)
	require.NoError(t, err)
	require.NotEmpty(t, list)
	return list[0]
}

func TestOnePendingAndRateLimitUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db, envOptions{})
		e.addDevice(t, "acct-1", "token-1")
		var created atomic.Int64
		var ids sync.Map
		for wave := 0; wave < 8; wave++ {
			var wg sync.WaitGroup
			for range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, err := e.svc.Create(ctx, req("acct-1"))
					if err == nil {
						created.Add(1)
						ids.Store(a.ID, true)
						return
					}
					if !errors.Is(err, push.ErrPending) && !errors.Is(err, push.ErrRateLimited) {
						t.Errorf("unexpected error: %v", err)
					}
				}()
			}
			wg.Wait()
			// Close whatever is pending so the next wave may create again.
			pending, err := e.svc.Pending(ctx, "acct-1")
			require.NoError(t, err)
			require.LessOrEqual(t, len(pending), 1, "at most one pending request")
			for _, p := range pending {
				require.NoError(t, e.svc.Cancel(ctx, "acct-1", p.ID))
			}
		}
		require.EqualValues(t, push.DefaultPerWindow, created.Load(), "exactly the per-window limit was created")
		require.True(t, e.audit.has("push.request_refused"))
	})
}

func TestCancelFallsBackAndTellsThePhone(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{})
	d := e.addDevice(t, "acct-1", "token-1")
	phone := e.connect(t, d)
	a, err := e.svc.Create(ctx, req("acct-1"))
	require.NoError(t, err)
	phone.ack(phone.next(t, push.MsgApprovalRequest).Approval.ID)
	require.NoError(t, e.svc.Cancel(ctx, "acct-1", a.ID))
	m := phone.next(t, push.MsgApprovalClosed)
	require.Equal(t, push.StatusCancelled, m.Status)
	ev, ok := e.audit.find("push.fallback")
	require.True(t, ok)
	require.Equal(t, "chose_code", ev.Detail["reason"])
	_, err = e.svc.Answer(ctx, d, a.ID, push.Answer{Decision: push.DecisionApprove, Number: a.Number, Assertion: assertion(a.View(), a.Number)})
	require.ErrorIs(t, err, push.ErrNotPending)
}

func TestPendingSentOnConnectAndShutdownCloses1001(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{noSender: true, cfg: push.Config{AckTimeout: 30 * time.Second}})
	d := e.addDevice(t, "acct-1", "")
	other := e.connect(t, e.addDevice(t, "acct-2", ""))
	a, err := e.svc.Create(ctx, req("acct-1"))
	require.NoError(t, err)
	phone := e.connect(t, d)
	require.Equal(t, a.ID, phone.next(t, push.MsgApprovalRequest).Approval.ID, "a phone that connects late still gets the request")
	require.Equal(t, 2, e.svc.Hub().Connections())
	e.svc.Close()
	require.Contains(t, phone.closeCodes(), push.CloseGoingAway)
	require.Contains(t, other.closeCodes(), push.CloseGoingAway)
}

func TestChallengeBindsEverything(t *testing.T) {
	base := push.Challenge("id", []byte("nonce-nonce-nonce"), 42)
	require.Len(t, base, 32)
	for name, c := range map[string][]byte{
		"number": push.Challenge("id", []byte("nonce-nonce-nonce"), 43),
		"id":     push.Challenge("id2", []byte("nonce-nonce-nonce"), 42),
		"nonce":  push.Challenge("id", []byte("nonce-nonce-nonce!"), 42),
	} {
		require.NotEqual(t, base, c, name)
	}
}
