package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
)

func TestCommands(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		dir := t.TempDir()
		env := map[string]string{"IDLINK_DATA_DIR": dir, "IDLINK_DATABASE_URL": dbURL, "IDLINK_LOG_LEVEL": "error"}
		idlink := func(args ...string) (string, error) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
			return out.String() + errOut.String(), err
		}

		out, err := idlink("migrate")
		require.NoError(t, err)
		require.Contains(t, out, "schema version")

		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		keyFile := filepath.Join(dir, "rp.pem")
		require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))

		out, err = idlink("client", "create", "--name", "Clinic", "--redirect-uri", "https://clinic.example/cb",
			"--redirect-uri", "https://clinic.example/cb2", "--public-key-file", keyFile, "--scopes", "openid,email",
			"--vtr", `["P0.Cp.Cd", "P9.Cp.Cd"]`, "--default-vtr", `["P0.Cp.Cd"]`, "--refresh")
		require.NoError(t, err, out)
		id := strings.TrimSpace(out)
		require.NotEmpty(t, id)

		out, err = idlink("client", "list")
		require.NoError(t, err)
		require.Contains(t, out, id)
		require.Contains(t, out, "Clinic")

		out, err = idlink("client", "update", id, "--name", "Clinic B", "--scopes", "openid,email,phone")
		require.NoError(t, err, out)
		out, err = idlink("client", "show", id)
		require.NoError(t, err)
		require.Contains(t, out, `"name": "Clinic B"`)
		require.Contains(t, out, `"phone"`)
		require.Contains(t, out, "https://clinic.example/cb2", "fields not given are kept")

		// Bad input is refused with a message naming the problem.
		for _, args := range [][]string{
			{"client", "create", "--name", "X", "--redirect-uri", "http://evil.example/cb", "--public-key-file", keyFile},
			{"client", "create", "--name", "X", "--redirect-uri", "https://a.example/cb", "--public-key-file", keyFile, "--vtr", "not json"},
			{"client", "create", "--name", "X", "--redirect-uri", "https://a.example/cb"},
			{"client", "show", "nobody"},
			{"client", "frobnicate"},
			{"keys", "rotate"}, // the next key was only just published
		} {
			out, err := idlink(args...)
			require.Error(t, err, "%v: %s", args, out)
		}

		out, err = idlink("keys", "rotate", "--force")
		require.NoError(t, err, out)
		out, err = idlink("keys", "list")
		require.NoError(t, err)
		require.Contains(t, out, "active")
		require.Contains(t, out, "retired")
		require.Contains(t, out, "next")

		out, err = idlink("client", "delete", id)
		require.NoError(t, err, out)
		_, err = idlink("client", "show", id)
		require.Error(t, err)
	})
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	env := func(k string) string { return map[string]string{"IDLINK_DATA_DIR": t.TempDir()}[k] }
	require.ErrorIs(t, run(context.Background(), nil, env, &out, &errOut), errUsage)
	require.ErrorIs(t, run(context.Background(), []string{"nope"}, env, &out, &errOut), errUsage)
	require.Contains(t, errOut.String(), "usage: idlink")
}
