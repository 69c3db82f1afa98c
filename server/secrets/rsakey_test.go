package secrets

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRSAPrivateKeyPEM(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	require.NoError(t, err)
	ec8, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)
	encode := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"PKCS #8", encode("PRIVATE KEY", pkcs8), true},
		{"PKCS #1", encode("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), true},
		{"not PEM", []byte("hello"), false},
		{"public key", encode("PUBLIC KEY", []byte{1, 2, 3}), false},
		{"EC key", encode("PRIVATE KEY", ec8), false},
		{"PKCS #1 labelled PKCS #8", encode("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), false},
		{"garbage in the block", encode("RSA PRIVATE KEY", []byte("nope")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRSAPrivateKeyPEM(tc.in)
			if !tc.ok {
				require.ErrorIs(t, err, ErrNotRSAKey)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.True(t, rsaKey.Equal(got))
		})
	}
}

func TestReadRSAPrivateKey(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadRSAPrivateKey(filepath.Join(dir, "missing.pem"))
	require.ErrorIs(t, err, fs.ErrNotExist)

	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("hello"), 0o600))
	_, err = ReadRSAPrivateKey(bad)
	require.ErrorIs(t, err, ErrNotRSAKey)
	require.ErrorContains(t, err, bad)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	good := filepath.Join(dir, "good.pem")
	require.NoError(t, os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	got, err := ReadRSAPrivateKey(good)
	require.NoError(t, err)
	require.True(t, key.Equal(got))
}
