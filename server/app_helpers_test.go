package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fasthttp/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// enrolApp registers a companion-app device for the account in-process
// (the enrolment API has its own tests in server/companion) and holds its
// stream, so that approval requests wait for it instead of failing over
// to a code at once.
func enrolApp(t *testing.T, s *servertest.Server, email, password string) string {
	t.Helper()
	ctx := context.Background()
	acct, err := s.Accounts.CheckPassword(ctx, audit.Actor{}, email, password)
	require.NoError(t, err)
	rp := virtualwebauthn.RelyingParty{ID: servertest.WebAuthnRPID, Name: "idlink", Origin: servertest.WebAuthnOrigin}
	auth, cred := virtualwebauthn.NewAuthenticator(), virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
	ceremony, options, err := s.FIDO.BeginRegistration(ctx, fido.User{AccountID: acct.ID, Name: email}, fido.KindApp)
	require.NoError(t, err)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	att := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)
	id := secrets.NewID()
	fc, err := s.FIDO.FinishRegistration(ctx, acct.ID, ceremony, []byte(att), "Test phone", id)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	_, err = s.Devices.Register(ctx, device.Device{ID: id, AccountID: acct.ID, Name: "Test phone", Platform: device.PlatformAndroid,
		PublicKey: der, FIDOCredentialID: fc.ID})
	require.NoError(t, err)

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	require.NoError(t, err)
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: id, Audience: jwt.Audience{s.URL + "/app/v1/stream"}, ID: secrets.NewID(),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(30 * time.Second))}).Serialize()
	require.NoError(t, err)
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {"DeviceJWT " + raw}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	go func() { // read (and never answer) until the test ends
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return id
}
