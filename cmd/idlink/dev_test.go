package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/fasthttp/websocket"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

// TestSeedDevices seeds 20 accounts with devices on a temporary SQLite
// database, refuses outside development, and checks that a seeded device
// can hold its stream and approve a request with its FIDO credential.
func TestSeedDevices(t *testing.T) {
	dbURL, dir := dbtest.SQLiteURL(t), t.TempDir()
	outFile := filepath.Join(dir, "devices.json")
	env := map[string]string{"IDLINK_DATA_DIR": dir, "IDLINK_DATABASE_URL": dbURL, "IDLINK_LOG_LEVEL": "error",
		"IDLINK_WEBAUTHN_RP_ID": servertest.WebAuthnRPID, "IDLINK_WEBAUTHN_ORIGINS": servertest.WebAuthnOrigin}
	idlink := func(extra map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return env[k]
		}, &out, &errOut)
		return out.String() + errOut.String(), err
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no IDLINK_ENV", nil, []string{"dev", "seed-devices", "-n", "1", "-out", outFile}, "IDLINK_ENV=development"},
		{"no subcommand", map[string]string{"IDLINK_ENV": "development"}, []string{"dev"}, "usage"},
		{"bad -n", map[string]string{"IDLINK_ENV": "development"}, []string{"dev", "seed-devices", "-n", "0"}, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idlink(tc.env, tc.args...)
			require.ErrorContains(t, err, tc.want)
			_, statErr := os.Stat(outFile)
			require.True(t, os.IsNotExist(statErr))
		})
	}

	out, err := idlink(map[string]string{"IDLINK_ENV": "development"}, "dev", "seed-devices", "-n", "20", "-out", outFile, "-workers", "3")
	require.NoError(t, err, out)
	require.Contains(t, out, "seeded 20 accounts")
	info, err := os.Stat(outFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	raw, err := os.ReadFile(outFile)
	require.NoError(t, err)
	var devs []seededDevice
	require.NoError(t, json.Unmarshal(raw, &devs))
	require.Len(t, devs, 20)
	ids := map[string]bool{}
	for _, d := range devs {
		require.NotEmpty(t, d.AccountID)
		require.NotEmpty(t, d.DeviceID)
		require.NotEmpty(t, d.DeviceKeyPEM)
		require.Len(t, d.Authenticator.Credentials, 1)
		ids[d.DeviceID] = true
	}
	require.Len(t, ids, 20)
	require.Equal(t, "load00001@example.test", devs[0].Email)

	// A server on the same database: device 7 holds its stream, gets a
	// request and approves it.
	s := servertest.Start(t, dbURL, map[string]string{"IDLINK_DATA_DIR": dir}, server.Options{})
	d := devs[7]
	key := parseKey(t, d.DeviceKeyPEM)
	sign := func(path string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
		require.NoError(t, err)
		jti := make([]byte, 16)
		_, _ = rand.Read(jti)
		now := time.Now()
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: d.DeviceID, Audience: jwt.Audience{s.URL + path},
			ID: fmt.Sprintf("%x", jti), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(30 * time.Second))}).Serialize()
		require.NoError(t, err)
		return "DeviceJWT " + tok
	}
	conn, _, err := (&websocket.Dialer{}).Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/app/v1/stream",
		http.Header{"Authorization": {sign("/app/v1/stream")}})
	require.NoError(t, err)
	defer conn.Close()
	var hello push.Message
	require.NoError(t, conn.ReadJSON(&hello))
	require.Equal(t, push.MsgHello, hello.Type)
	require.Equal(t, d.DeviceID, hello.DeviceID)

	a, err := s.Push.Create(context.Background(), push.Request{AccountID: d.AccountID, ClientName: "Seed test"})
	require.NoError(t, err)
	var m push.Message
	require.NoError(t, conn.ReadJSON(&m))
	require.Equal(t, push.MsgApprovalRequest, m.Type)
	require.Equal(t, a.ID, m.Approval.ID)
	require.NoError(t, conn.WriteJSON(push.Message{Type: push.MsgAck, ID: a.ID}))

	d.Credential.Counter++
	assertion := virtualwebauthn.CreateAssertionResponse(virtualwebauthn.RelyingParty{ID: d.RPID, Origin: d.Origin}, d.Authenticator, d.Credential,
		virtualwebauthn.AssertionOptions{Challenge: push.Challenge(a.ID, m.Approval.Nonce, a.Number), RelyingPartyID: d.RPID})
	body, err := json.Marshal(map[string]any{"decision": "approve", "number": a.Number, "assertion": json.RawMessage(assertion)})
	require.NoError(t, err)
	path := "/app/v1/approvals/" + a.ID + "/answer"
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", sign(path))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "approved", ans.Status)
}

func parseKey(t *testing.T, p string) *ecdsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode([]byte(p))
	require.NotNil(t, block)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	ec, ok := k.(*ecdsa.PrivateKey)
	require.True(t, ok)
	return ec
}
