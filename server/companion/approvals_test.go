package companion_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/push/fcmfake"
	"github.com/idlink/idlink/server/servertest"
)

// stream is the phone's open WebSocket: messages arrive on msgs.
type stream struct {
	conn   *websocket.Conn
	msgs   chan push.Message
	closed chan int // the close code, once
}

// openStream connects p's stream with a fresh device JWT.
func (e *env) openStream(p *phone) *stream {
	e.t.Helper()
	h := http.Header{"Authorization": {e.deviceAuth(p, "/app/v1/stream")}}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.s.URL, "http")+"/app/v1/stream", h)
	require.NoError(e.t, err)
	_ = resp.Body.Close()
	return e.follow(conn)
}

// follow reads an open stream's messages into a stream.
func (e *env) follow(conn *websocket.Conn) *stream {
	e.t.Helper()
	s := &stream{conn: conn, msgs: make(chan push.Message, 32), closed: make(chan int, 1)}
	go func() {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				code := 0
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				s.closed <- code
				return
			}
			var m push.Message
			if json.Unmarshal(b, &m) == nil {
				s.msgs <- m
			}
		}
	}()
	e.t.Cleanup(func() { _ = conn.Close() })
	require.Equal(e.t, push.MsgHello, s.next(e.t, "").Type)
	return s
}

// next returns the next message (of typ, when not empty).
func (s *stream) next(t *testing.T, typ string) push.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if typ == "" || m.Type == typ {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q message on the stream", typ)
		}
	}
}

func (s *stream) ack(t *testing.T, id string) {
	require.NoError(t, s.conn.WriteJSON(push.Message{Type: push.MsgAck, ID: id}))
}

// approval makes the assertion that approves v with number.
func (p *phone) approval(v push.View, number int) json.RawMessage {
	p.cred.Counter++
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, p.auth, p.cred,
		virtualwebauthn.AssertionOptions{Challenge: push.Challenge(v.ID, v.Nonce, number), RelyingPartyID: rp.ID}))
}

// answer sends the phone's answer to request id.
func (e *env) answer(p *phone, id string, body map[string]any) (int, map[string]any) {
	e.t.Helper()
	path := "/app/v1/approvals/" + id + "/answer"
	return e.call(http.MethodPost, path, e.deviceAuth(p, path), body)
}

// loginUntilPhone starts an authorization for vtr in a fresh browser and
// types the password; it returns the browser, the page it shows and the
// authorization request.
func (e *env) loginUntilPhone(r *testRP, vtr string) (*servertest.Browser, *servertest.Page, url.Values) {
	e.t.Helper()
	b := e.stoppingBrowser()
	q := url.Values{"response_type": {"code"}, "client_id": {r.client.ID}, "redirect_uri": {r.redirect}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n-1"}, "vtr": {vtr}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		"code_challenge_method": {"S256"}}
	pg := b.Get("/authorize?" + q.Encode())
	require.Equal(e.t, "Log in", pg.H1())
	pg = b.Submit(pg, "/login", map[string]string{"email": email, "password": pw})
	return b, pg, q
}

// finish follows the browser to the relying party (consent if asked) and
// returns the ID token's vot.
func (e *env) finish(r *testRP, b *servertest.Browser, pg *servertest.Page) string {
	e.t.Helper()
	if pg.HasForm("/authorize/consent") {
		pg = b.Submit(pg, "/authorize/consent", map[string]string{"decision": "allow"})
	}
	require.Equal(e.t, http.StatusSeeOther, pg.Status, "page %q %v", pg.H1(), pg.Errors())
	loc, err := url.Parse(pg.Header.Get("Location"))
	require.NoError(e.t, err)
	code := loc.Query().Get("code")
	require.NotEmpty(e.t, code, loc.String())
	return r.claims(code, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")["vot"].(string)
}

func number(t *testing.T, pg *servertest.Page) int {
	t.Helper()
	require.Equal(t, "Check your phone", pg.H1(), pg.Errors())
	n, err := strconv.Atoi(strings.TrimSpace(pg.Text("approval-number")))
	require.NoError(t, err)
	return n
}

func TestPushApprovalOverStream(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := start(t, dbURL)
		p := newPhone(t)
		e.enrol(p)
		r := e.newRP()
		st := e.openStream(p)

		b, pg, _ := e.loginUntilPhone(r, `["P0.Cm"]`)
		n := number(t, pg)
		require.True(t, pg.HasForm("/login/approve/code"), "a code is always offered")
		m := st.next(t, push.MsgApprovalRequest)
		v := *m.Approval
		require.Equal(t, "Test Health Service", v.ClientName)
		require.Equal(t, "127.0.0.1", v.IP)
		st.ack(t, v.ID)

		// The app can also read the request and the pending list.
		path := "/app/v1/approvals/" + v.ID
		status, out := e.call(http.MethodGet, path, e.deviceAuth(p, path), nil)
		require.Equal(t, http.StatusOK, status, out)
		require.Equal(t, "pending", out["status"])
		_, hasNumber := out["number"]
		require.False(t, hasNumber, "the phone is never told the number")

		status, out = e.answer(p, v.ID, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
		require.Equal(t, http.StatusOK, status, out)
		require.Equal(t, "approved", out["status"])
		require.Equal(t, push.StatusApproved, st.next(t, push.MsgApprovalClosed).Status)

		// Replayed answer: single use.
		status, out = e.answer(p, v.ID, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
		require.Equal(t, http.StatusConflict, status, out)
		require.Equal(t, "approval_closed", out["error"])

		checks := e.s.PDSChecks(t)
		pg = b.Submit(pg, "/login/approve", nil)
		require.Equal(t, "P0.Cm", e.finish(r, b, pg), "a phone approval proves Cm")
		require.Equal(t, 1, e.s.SignIns(t, e.s.AccountID(t, email), "password+push"), "one sign-in through login.SignIn")
		require.Equal(t, checks+1, e.s.PDSChecks(t), "the per-login PDS check ran")
		require.Eventually(t, func() bool { return e.auditCount("push.delivered", "websocket") == 1 }, 10*time.Second, 20*time.Millisecond,
			"the delivery is audited once the phone acknowledges")

		// With a password-and-second-factor request, the approval is Cd.
		b, pg, _ = e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		n = number(t, pg)
		v = *st.next(t, push.MsgApprovalRequest).Approval
		status, out = e.answer(p, v.ID, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
		require.Equal(t, http.StatusOK, status, out)
		require.Equal(t, "P0.Cp.Cd", e.finish(r, b, b.Submit(pg, "/login/approve", nil)))
	})
}

func TestPushApprovalRefusalsAndFallbacks(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		e := startWithClock(t, dbURL, webauthnEnv)
		p := newPhone(t)
		e.enrol(p)
		r := e.newRP()
		st := e.openStream(p)
		// Each case starts a new 15-minute window of requests and codes.
		next := func() { e.clk.Add(16 * time.Minute) }
		codePage := func(b *servertest.Browser, pg *servertest.Page) string {
			t.Helper()
			require.Equal(t, "Enter the security code", pg.H1(), pg.Errors())
			pg = b.Submit(pg, "/login/code", map[string]string{"code": e.s.CodeFor(t, servertest.E164(t, phoneNumber), "login_code")})
			return e.finish(r, b, pg)
		}

		t.Run("send me a code instead", func(t *testing.T) {
			b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd","P0.Cm"]`)
			number(t, pg)
			v := st.next(t, push.MsgApprovalRequest).Approval
			pg = b.Submit(pg, "/login/approve/code", nil)
			require.Equal(t, push.StatusCancelled, st.next(t, push.MsgApprovalClosed).Status)
			require.Equal(t, "P0.Cp.Cd", codePage(b, pg), "a code proves Cd only")
			status, out := e.answer(p, v.ID, map[string]any{"decision": "deny"})
			require.Equal(t, http.StatusConflict, status, out)
		})
		t.Run("wrong number", func(t *testing.T) {
			next()
			b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			n := number(t, pg)
			v := *st.next(t, push.MsgApprovalRequest).Approval
			wrong := 10 + (n-10+1)%90
			status, out := e.answer(p, v.ID, map[string]any{"decision": "approve", "number": wrong, "assertion": p.approval(v, wrong)})
			require.Equal(t, http.StatusUnprocessableEntity, status, out)
			require.Equal(t, "number_mismatch", out["error"])
			pg = b.Submit(pg, "/login/approve", nil)
			require.Equal(t, http.StatusForbidden, pg.Status)
			require.Equal(t, "The login was not approved", pg.H1())
			require.True(t, pg.HasForm("/login/approve/code"), "a decline never falls back silently: the person chooses")
			require.Equal(t, "P0.Cp.Cd", codePage(b, b.Submit(pg, "/login/approve/code", nil)))
		})
		t.Run("deny then ask again", func(t *testing.T) {
			next()
			b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			number(t, pg)
			v := *st.next(t, push.MsgApprovalRequest).Approval
			status, out := e.answer(p, v.ID, map[string]any{"decision": "deny"})
			require.Equal(t, http.StatusOK, status, out)
			pg = b.Submit(pg, "/login/approve", nil)
			require.Equal(t, "The login was not approved", pg.H1())
			pg = b.Submit(pg, "/login/approve/retry", nil)
			n := number(t, pg)
			v = *st.next(t, push.MsgApprovalRequest).Approval
			status, out = e.answer(p, v.ID, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
			require.Equal(t, http.StatusOK, status, out)
			require.Equal(t, "P0.Cp.Cd", e.finish(r, b, b.Submit(pg, "/login/approve", nil)))
		})
		t.Run("assertion that does not verify", func(t *testing.T) {
			next()
			b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			n := number(t, pg)
			v := *st.next(t, push.MsgApprovalRequest).Approval
			p.auth.Options.UserNotVerified = true
			status, out := e.answer(p, v.ID, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
			p.auth.Options.UserNotVerified = false
			require.Equal(t, http.StatusUnprocessableEntity, status, out)
			require.Equal(t, "user_not_verified", out["error"])
			require.Equal(t, "The login was not approved", b.Submit(pg, "/login/approve", nil).H1())
		})
		t.Run("malformed answers", func(t *testing.T) {
			next()
			_, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			number(t, pg)
			v := *st.next(t, push.MsgApprovalRequest).Approval
			for _, body := range []map[string]any{{"decision": "maybe"}, {"decision": "approve", "number": 5}, {"decision": "deny", "extra": 1}} {
				status, out := e.answer(p, v.ID, body)
				require.Equal(t, http.StatusBadRequest, status, out)
				require.Equal(t, "invalid_request", out["error"])
			}
			status, out := e.answer(p, "no-such-request", map[string]any{"decision": "deny"})
			require.Equal(t, http.StatusNotFound, status, out)
			require.Equal(t, "approval_not_found", out["error"])
			status, _ = e.answer(p, v.ID, map[string]any{"decision": "deny"}) // close it for the next case
			require.Equal(t, http.StatusOK, status)
		})
		t.Run("this wasn't me", func(t *testing.T) {
			next()
			b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			number(t, pg)
			v := *st.next(t, push.MsgApprovalRequest).Approval
			status, out := e.answer(p, v.ID, map[string]any{"decision": "report"})
			require.Equal(t, http.StatusOK, status, out)
			require.Equal(t, "reported", out["status"])
			pg = b.Submit(pg, "/login/approve", nil)
			require.Equal(t, "The login was not approved", pg.H1())
			require.False(t, pg.HasForm("/login/approve/retry"), "no asking again after a report")
			require.Contains(t, e.s.Latest(t, email, "push_reported").Text, "was not you")
			require.Equal(t, 1, e.auditCount("push.reported", v.ID))

			// For the next hour, logins go straight to the code.
			b, pg, _ = e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
			require.Equal(t, "P0.Cp.Cd", codePage(b, pg))
		})
	})
}

func TestPushFallbacksWithoutSocket(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		fake := fcmfake.New()
		fcm := httptest.NewServer(fake)
		defer fcm.Close()
		env := map[string]string{"IDLINK_FCM_PROJECT_ID": "idlink-test", "IDLINK_FCM_ENDPOINT": fcm.URL + "/v1"}
		for k, v := range webauthnEnv {
			env[k] = v
		}
		e := startWithClock(t, dbURL, env)
		clk := e.clk
		p := newPhone(t)
		e.enrol(p)
		r := e.newRP()

		// No push token, no socket: nothing can reach the phone.
		b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		number(t, pg)
		require.Eventually(t, func() bool { return e.auditCount("push.fallback", "undeliverable") == 1 }, 10*time.Second, 20*time.Millisecond)
		pg = b.Submit(pg, "/login/approve", nil)
		require.Equal(t, "Enter the security code", pg.H1())
		require.Contains(t, pg.Body, "We could not reach your phone")
		pg = b.Submit(pg, "/login/code", map[string]string{"code": e.s.CodeFor(t, servertest.E164(t, phoneNumber), "login_code")})
		require.Equal(t, "P0.Cp.Cd", e.finish(r, b, pg))

		// With a push token, a sleeping phone is woken by FCM and fetches
		// the request.
		path := "/app/v1/device/push-token"
		status, out := e.call(http.MethodPut, path, e.deviceAuth(p, path), map[string]any{"push_token": "fcm-token-1"})
		require.Equal(t, http.StatusNoContent, status, out)
		b, pg, _ = e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		n := number(t, pg)
		var wake fcmfake.Message
		select {
		case wake = <-fake.Received():
		case <-time.After(10 * time.Second):
			t.Fatal("no FCM message")
		}
		require.Equal(t, "fcm-token-1", wake.Token)
		id := wake.Data["approval_id"]
		apPath := "/app/v1/approvals/" + id
		status, out = e.call(http.MethodGet, apPath, e.deviceAuth(p, apPath), nil)
		require.Equal(t, http.StatusOK, status, out)
		var v push.View
		raw, _ := json.Marshal(out)
		require.NoError(t, json.Unmarshal(raw, &v))
		status, out = e.answer(p, id, map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
		require.Equal(t, http.StatusOK, status, out)
		require.Equal(t, "P0.Cp.Cd", e.finish(r, b, b.Submit(pg, "/login/approve", nil)))

		// Nobody answers: after a minute the browser gets a code.
		b, pg, _ = e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		number(t, pg)
		<-fake.Received()
		clk.Add(61 * time.Second)
		pg = b.Submit(pg, "/login/approve", nil)
		require.Equal(t, "Enter the security code", pg.H1())
		require.Contains(t, pg.Body, "did not answer in time")
		require.Equal(t, 1, e.auditCount("push.fallback", "expired"))
		clk.Add(-61 * time.Second)

		// A dead token is cleared and the login falls back.
		fake.MarkUnregistered("fcm-token-1")
		b, pg, _ = e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		number(t, pg)
		require.Eventually(t, func() bool { return e.auditCount("push.delivery_failed", "unregistered") == 1 }, 10*time.Second, 20*time.Millisecond)
		status, out = e.call(http.MethodGet, "/app/v1/device", e.deviceAuth(p, "/app/v1/device"), nil)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, false, out["has_push_token"])
		require.Eventually(t, func() bool {
			pg := b.Get("/login/approve")
			if pg.HasForm("/login/approve") {
				pg = b.Submit(pg, "/login/approve", nil)
			}
			return pg.H1() == "Enter the security code"
		}, 10*time.Second, 50*time.Millisecond, "with the only token dead, the login moves to a code")
	})
}

func TestPushRateLimitAndRemovedDevice(t *testing.T) {
	e := start(t, dbtest.SQLiteURL(t))
	p := newPhone(t)
	e.enrol(p)
	r := e.newRP()
	st := e.openStream(p)
	for i := 0; i < 5; i++ {
		_, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
		number(t, pg)
		v := st.next(t, push.MsgApprovalRequest).Approval
		status, out := e.answer(p, v.ID, map[string]any{"decision": "deny"})
		require.Equal(t, http.StatusOK, status, out)
	}
	_, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
	require.Equal(t, "Enter the security code", pg.H1(), "the sixth request in 15 minutes is refused")
	require.Contains(t, pg.Body, "too many times")

	// Unregistering the device closes its socket at once; a stream
	// without a valid device JWT is refused before the upgrade.
	status, _ := e.call(http.MethodDelete, "/app/v1/device", e.deviceAuth(p, "/app/v1/device"), nil)
	require.Equal(t, http.StatusNoContent, status)
	select {
	case code := <-st.closed:
		require.Equal(t, push.ClosePolicy, code)
	case <-time.After(10 * time.Second):
		t.Fatal("socket of a removed device stays open")
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {e.deviceAuth(p, "/app/v1/stream")}})
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	status, out := e.call(http.MethodGet, "/app/v1/stream", e.deviceAuth(p, "/app/v1/stream"), nil)
	require.Equal(t, http.StatusUnauthorized, status, out)
	require.Equal(t, "device_removed", out["error"])
}

func TestStreamNeedsUpgradeAndOrigin(t *testing.T) {
	e := start(t, dbtest.SQLiteURL(t))
	p := newPhone(t)
	e.enrol(p)
	status, out := e.call(http.MethodGet, "/app/v1/stream", e.deviceAuth(p, "/app/v1/stream"), nil)
	require.Equal(t, http.StatusUpgradeRequired, status, out)
	require.Equal(t, "upgrade_required", out["error"])

	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {e.deviceAuth(p, "/app/v1/stream")}, "Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a foreign origin is refused, not asked to upgrade")
	var refused map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&refused))
	require.Equal(t, "origin_forbidden", refused["error"])

	_, resp, err = websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.s.URL, "http")+"/app/v1/stream", nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// clock is a settable server clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.off += d; c.mu.Unlock() }
