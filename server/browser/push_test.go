package browser_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/descope/virtualwebauthn"
	"github.com/fasthttp/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// appPhone is an enrolled companion app: its device key and its platform
// authenticator.
type appPhone struct {
	s        *servertest.Server
	id       string
	key      *ecdsa.PrivateKey
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
	deviceRP virtualwebauthn.RelyingParty
}

// enrolPhone registers a companion-app device for the account in-process
// (the enrolment API has its own tests in server/companion).
func enrolPhone(t *testing.T, s *servertest.Server, email, pw string) *appPhone {
	t.Helper()
	ctx := context.Background()
	acct, err := s.Accounts.CheckPassword(ctx, audit.Actor{}, email, pw)
	require.NoError(t, err)
	p := &appPhone{s: s, id: secrets.NewID(), auth: virtualwebauthn.NewAuthenticator(), cred: virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2),
		deviceRP: virtualwebauthn.RelyingParty{ID: servertest.WebAuthnRPID, Name: "idlink", Origin: servertest.WebAuthnOrigin}}
	ceremony, options, err := s.FIDO.BeginRegistration(ctx, fido.User{AccountID: acct.ID, Name: email}, fido.KindApp)
	require.NoError(t, err)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	att := virtualwebauthn.CreateAttestationResponse(p.deviceRP, p.auth, p.cred, *ao)
	p.auth.Options.UserHandle = []byte(ao.UserID)
	p.auth.AddCredential(p.cred)
	cred, err := s.FIDO.FinishRegistration(ctx, acct.ID, ceremony, []byte(att), "Chromium test phone", p.id)
	require.NoError(t, err)
	p.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&p.key.PublicKey)
	require.NoError(t, err)
	_, err = s.Devices.Register(ctx, device.Device{ID: p.id, AccountID: acct.ID, Name: "Chromium test phone", Platform: device.PlatformAndroid,
		PublicKey: der, FIDOCredentialID: cred.ID})
	require.NoError(t, err)
	return p
}

func (p *appPhone) jwt(t *testing.T, path string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, nil)
	require.NoError(t, err)
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: p.id, Audience: jwt.Audience{p.s.URL + path}, ID: secrets.NewID(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(30 * time.Second))}).Serialize()
	require.NoError(t, err)
	return "DeviceJWT " + raw
}

// nextRequest holds the stream until a request arrives, and acknowledges it.
func (p *appPhone) nextRequest(t *testing.T, conn *websocket.Conn) push.View {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	for {
		var m push.Message
		require.NoError(t, conn.ReadJSON(&m))
		if m.Type == push.MsgApprovalRequest {
			require.NoError(t, conn.WriteJSON(push.Message{Type: push.MsgAck, ID: m.Approval.ID}))
			return *m.Approval
		}
	}
}

// approve answers v with the number the person read in the browser.
func (p *appPhone) approve(t *testing.T, v push.View, number int) {
	t.Helper()
	p.cred.Counter++
	assertion := virtualwebauthn.CreateAssertionResponse(p.deviceRP, p.auth, p.cred,
		virtualwebauthn.AssertionOptions{Challenge: push.Challenge(v.ID, v.Nonce, number), RelyingPartyID: p.deviceRP.ID})
	body, err := json.Marshal(map[string]any{"decision": "approve", "number": number, "assertion": json.RawMessage(assertion)})
	require.NoError(t, err)
	path := "/app/v1/approvals/" + v.ID + "/answer"
	req, err := http.NewRequest(http.MethodPost, p.s.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", p.jwt(t, path))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestPushApprovalJourneyInChromium: a relying party asks for P0.Cp.Cd;
// after the password the browser shows a number and waits; the phone,
// holding its stream, types the number and approves with its biometric
// credential; the page's script hears the answer (server-sent events) and
// carries on by itself to consent and back to the relying party.
func TestPushApprovalJourneyInChromium(t *testing.T) {
	ctx := chrome(t)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	base := "http://localhost:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	p := &page{t: t, ctx: ctx, s: s, base: base}
	const email, pw, phone = "push@example.org", "correct horse battery", "07700 900458"
	s.CreateAccount(t, s.NewBrowser(t), email, pw, phone)
	ph := enrolPhone(t, s, email, pw)

	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {ph.jwt(t, "/app/v1/stream")}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	defer conn.Close()

	rp := servertest.NewRP(t, s, false, "email")
	a := rp.Request(map[string]string{"vtr": `["P0.Cp.Cd"]`})
	p.open(base + a.URL[strings.Index(a.URL, "/authorize"):])
	p.expect("Log in")
	p.fill("/login", map[string]string{"email": email, "password": pw})
	p.expect("Check your phone")
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("approval-number").textContent`))
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimSpace(shown))
	require.NoError(t, err)

	v := ph.nextRequest(t, conn)
	require.Equal(t, "Test Health Service", v.ClientName)
	require.Equal(t, "Chrome", v.Browser)
	// Nobody presses anything in the browser from here on.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__idlinkStale = true`)))
	ph.approve(t, v, n)
	p.expect("Share your details with Test Health Service")
	p.fill("/authorize/consent", nil)
	var loc string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.HasPrefix(loc, rp.CallbackURL()) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		time.Sleep(50 * time.Millisecond)
	}
	require.True(t, strings.HasPrefix(loc, rp.CallbackURL()), "back at the relying party, not %s", loc)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	_, _, claims := rp.Exchange(u.Query().Get("code"), a)
	require.Equal(t, "P0.Cp.Cd", claims["vot"])
}

// TestApprovalFallbackButtonInChromium: on the phone-approval page,
// "Send me a security code instead" lands on the code page and stays
// there. Cancelling closes the request, the page's event stream reports
// it closed, and the script used to submit "Check again" over the
// person's choice, leaving them on an empty login page.
func TestApprovalFallbackButtonInChromium(t *testing.T) {
	ctx := chrome(t)
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{})
	base := "http://localhost:" + s.URL[strings.LastIndex(s.URL, ":")+1:]
	p := &page{t: t, ctx: ctx, s: s, base: base}
	const email, pw, phone = "fallback@example.org", "correct horse battery", "07700 900459"
	s.CreateAccount(t, s.NewBrowser(t), email, pw, phone)
	ph := enrolPhone(t, s, email, pw)

	// The phone holds its stream (so the request waits for it) and
	// acknowledges the request, but never answers.
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {ph.jwt(t, "/app/v1/stream")}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	defer conn.Close()

	for range 3 { // it failed twice in three tries before the fix
		p.open("/login")
		p.expect("Log in")
		p.fill("/login", map[string]string{"email": email, "password": pw})
		p.expect("Check your phone")
		ph.nextRequest(t, conn)
		p.fill("/login/approve/code", nil)
		p.expect("Enter the security code")
		// Whatever the event stream says now, the page stays.
		time.Sleep(1500 * time.Millisecond)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(loc, "/login/code"), "still on the code page, not %s", loc)
		p.expect("Enter the security code")
		p.fill("/login/code", map[string]string{"code": s.CodeFor(t, servertest.E164(t, phone), "login_code")})
		p.expect("Your account")
		p.fill("/sign-out", nil)
		p.expect("You have signed out")
	}
}
