package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	idp "github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/servertest"
)

// webauthnEnv gives the test server a WebAuthn relying party the
// simulated phone can answer for.
var webauthnEnv = map[string]string{"IDLINK_WEBAUTHN_RP_ID": "localhost", "IDLINK_WEBAUTHN_ORIGINS": "http://localhost"}

// TestSimulator enrols the simulated phone through the OIDC pages, asks
// who it is with a device JWT, and performs biometric logins for a test
// relying party and for the development demo relying party: the ID token
// says P0.Cm.
func TestSimulator(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		// WebAuthn refuses an IP address as relying party id, and the test
		// server's issuer is http://127.0.0.1:port.
		s := servertest.Start(t, dbURL, webauthnEnv, server.Options{})
		const email, pw, phone = "sim@example.org", "correct horse battery staple", "07700 900456"
		s.CreateAccount(t, s.NewBrowser(t), email, pw, phone)

		dir := t.TempDir()
		stateFile := filepath.Join(dir, "phone.json")
		var out bytes.Buffer
		err := run(ctx, "enrol", []string{"-state", stateFile, "-url", s.URL, "-email", email, "-password", pw,
			"-phone", servertest.E164(t, phone), "-rp-id", "localhost", "-origin", "http://localhost", "-name", "Sam's test phone", "-push-token", "fcm-token-1"}, nil, &out)
		require.NoError(t, err)
		require.Contains(t, out.String(), "enrolled device")
		info, err := os.Stat(stateFile)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

		out.Reset()
		require.NoError(t, run(ctx, "whoami", []string{"-state", stateFile}, nil, &out))
		var me map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &me))
		st, err := loadState(stateFile)
		require.NoError(t, err)
		require.Equal(t, st.DeviceID, me["device_id"])
		require.Equal(t, "Sam's test phone", me["name"])
		require.Equal(t, true, me["has_push_token"])

		// A relying party registered like an NHS login client.
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		keyFile := filepath.Join(dir, "rp-key.pem")
		require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
		pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		rp, err := s.OIDC.Clients().Create(ctx, idp.Client{
			Name: "Test Health Service", RedirectURIs: []string{"http://127.0.0.1:9/callback"}, Scopes: []string{"openid"},
			VTR: idp.NHSProfileVectors(), PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		})
		require.NoError(t, err)

		for i := range 2 { // the second time, consent has been given
			out.Reset()
			err = run(ctx, "login", []string{"-state", stateFile, "-client-id", rp.ID, "-redirect-uri", "http://127.0.0.1:9/callback",
				"-key-file", keyFile, "-vtr", `["P0.Cm"]`}, nil, &out)
			require.NoError(t, err, "login %d", i)
			claims := map[string]any{}
			require.NoError(t, json.Unmarshal(out.Bytes(), &claims))
			require.Equal(t, "P0.Cm", claims["vot"])
			require.Equal(t, rp.ID, claims["aud"])
		}

		// The development demo relying party, with its key file.
		out.Reset()
		err = run(ctx, "login", []string{"-state", stateFile, "-client-id", idp.DemoClientID,
			"-redirect-uri", idp.DemoRedirectURIs()[0], "-key-file", s.Demo.RPKeyPath}, nil, &out)
		require.NoError(t, err)
		require.Contains(t, out.String(), `"vot": "P0.Cm"`)

		// Asking for more than the biometric login proves stops at a page.
		err = run(ctx, "login", []string{"-state", stateFile, "-client-id", rp.ID, "-redirect-uri", "http://127.0.0.1:9/callback",
			"-key-file", keyFile, "-vtr", `["P0.Cp.Cd"]`}, nil, &out)
		require.Error(t, err)
		require.True(t, strings.Contains(err.Error(), "cannot answer"), err.Error())

		require.ErrorIs(t, run(ctx, "frobnicate", nil, nil, &out), errUsage)
	})
}
