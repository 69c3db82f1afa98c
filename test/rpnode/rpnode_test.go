// Package rpnode runs a real relying party, written in Node on
// openid-client 3 as NHS login's "OIDC clients" page lists, against
// idlink. The test skips when node or the npm packages are missing (`make
// test` installs them when node exists), unless IDLINK_REQUIRE_NODE=1
// (CI), when it fails instead.
package rpnode

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/servertest"
)

const (
	pw    = "correct horse battery"
	phone = "07700 900123"
)

// needNode returns the node binary, or skips (fails under
// IDLINK_REQUIRE_NODE=1) when node or the installed packages are missing.
func needNode(t *testing.T) string {
	t.Helper()
	missing := func(why string) string {
		if os.Getenv("IDLINK_REQUIRE_NODE") == "1" {
			t.Fatalf("IDLINK_REQUIRE_NODE=1 but %s", why)
		}
		t.Skipf("skipping the Node relying party: %s (run make test with node installed)", why)
		return ""
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "openid-client", "package.json")); err != nil {
		return missing("openid-client is not installed in test/rpnode (npm ci)")
	}
	return node
}

// run runs one step of rp.js with env and decodes what it prints.
func run(t *testing.T, node, step string, env map[string]string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "rp.js", step)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "rp.js %s: %s", step, stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), "rp.js %s printed %q", step, stdout.String())
}

// TestOpenIDClient3 signs a person in through idlink's pages for the Node
// relying party, configured with nothing but the issuer, its client_id,
// its key and its redirect URI: discovery, /authorize with NHS login's
// default vtr, the code exchange with a private_key_jwt assertion (RS512),
// ID token validation (RS512, nonce) and /userinfo.
func TestOpenIDClient3(t *testing.T) {
	node := needNode(t)
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		r := servertest.NewRP(t, s, false, "profile", "email")
		b := s.NewBrowser(t)
		s.CreateAccount(t, b, "node.rp@example.org", pw, phone)
		_, err := s.DB.Exec(s.DB.Rebind(`UPDATE accounts SET proofing_level = 'P9' WHERE email = ?`), "node.rp@example.org")
		require.NoError(t, err)

		jwk, err := json.Marshal(jose.JSONWebKey{Key: r.Key(), KeyID: "rp-node", Algorithm: "RS512", Use: "sig"})
		require.NoError(t, err)
		env := map[string]string{
			"ISSUER": s.URL, "CLIENT_ID": r.Client.ID, "REDIRECT_URI": r.CallbackURL(),
			"PRIVATE_KEY_JWK": string(jwk), "SCOPE": "openid profile email",
		}
		var start struct{ URL, State, Nonce string }
		run(t, node, "authurl", env, &start)

		p := b.Get(start.URL)
		require.Equal(t, "Share your details with Test Health Service", p.H1(), p.Errors())
		p = b.Submit(p, "/authorize/consent", map[string]string{"decision": "allow"})
		require.Equal(t, r.CallbackURL(), p.URL.Scheme+"://"+p.URL.Host+p.URL.Path, "%s %v", p.H1(), p.Errors())

		env["CALLBACK_URL"], env["STATE"], env["NONCE"] = p.URL.String(), start.State, start.Nonce
		var got struct {
			Claims   map[string]any `json:"claims"`
			UserInfo map[string]any `json:"userinfo"`
			Scope    string         `json:"scope"`
		}
		run(t, node, "callback", env, &got)
		require.Equal(t, "P9.Cp.Cd", got.Claims["vot"])
		require.Equal(t, "P9", got.Claims["identity_proofing_level"])
		require.Equal(t, start.Nonce, got.Claims["nonce"])
		require.Equal(t, got.Claims["sub"], got.UserInfo["sub"])
		require.Equal(t, "node.rp@example.org", got.UserInfo["email"])
		require.Equal(t, "openid profile email", got.Scope)
	})
}
