package secrets

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ErrNotRSAKey: the PEM data holds no RSA private key.
var ErrNotRSAKey = errors.New("not an RSA private key")

// ParseRSAPrivateKeyPEM reads an RSA private key from the first PEM block of
// b: PKCS #8 ("PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY"). Anything else
// wraps ErrNotRSAKey.
func ParseRSAPrivateKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: not PEM", ErrNotRSAKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM type %q is not a private key", ErrNotRSAKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRSAKey, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not RSA", ErrNotRSAKey, key)
	}
	return priv, nil
}

// ReadRSAPrivateKey reads an RSA private key from a PEM file (see
// ParseRSAPrivateKeyPEM); errors name the file.
func ReadRSAPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseRSAPrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
