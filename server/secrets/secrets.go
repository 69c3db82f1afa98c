// Package secrets makes the random identifiers and tokens the server hands
// out, and derives purpose-bound keys from the one master key in
// configuration: an HMAC for values stored hashed (security codes, link
// tokens, session ids) and an AEAD for values stored encrypted (signing keys).
// It also reads the RSA private keys given in PEM files (PDS, demo client).
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// KeySize is the length in bytes of a master key.
const KeySize = 32

// ErrKeySize is returned when a master key is not KeySize bytes long.
var ErrKeySize = errors.New("master key must be 32 bytes")

// ErrDecrypt is returned when sealed data was not produced by this key for
// this purpose, or has been altered.
var ErrDecrypt = errors.New("cannot decrypt: wrong key, wrong purpose or altered data")

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random 128-bit identifier as 26 lowercase base32 characters.
// Identifiers are not secrets, but they are unguessable.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return toLower(idEncoding.EncodeToString(b[:]))
}

// NewToken returns a random 256-bit secret as base64url without padding,
// fit for a URL or a cookie.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewDigits returns n random decimal digits, uniformly distributed.
func NewDigits(n int) string {
	out := make([]byte, n)
	ten := big.NewInt(10)
	for i := range out {
		d, _ := rand.Int(rand.Reader, ten)
		out[i] = byte('0' + d.Int64())
	}
	return string(out)
}

// NewKey returns a fresh random master key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k)
	return k
}

// Keyring derives purpose-bound keys from one master key. It is safe for
// concurrent use.
type Keyring struct {
	master []byte
}

// NewKeyring returns a Keyring for a 32-byte master key.
func NewKeyring(master []byte) (*Keyring, error) {
	if len(master) != KeySize {
		return nil, ErrKeySize
	}
	return &Keyring{master: append([]byte(nil), master...)}, nil
}

// Derive returns a 32-byte key for another component (the evidence
// store's encryption key, say), bound to purpose.
func (k *Keyring) Derive(purpose string) []byte { return k.derive("derived:" + purpose) }

func (k *Keyring) derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.master, nil, "idlink:"+purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("hkdf: %v", err)) // only fails for absurd lengths
	}
	return key
}

// MAC returns a keyed hash of value for purpose, as base64url. It is how
// short secrets (six-digit codes) and tokens are stored: a database dump
// alone does not let anyone test guesses.
func (k *Keyring) MAC(purpose, value string) string {
	m := hmac.New(sha256.New, k.derive("mac:"+purpose))
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Equal compares two MACs (or any two secrets) in constant time.
func Equal(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// Seal encrypts plaintext for purpose with AES-256-GCM; the result carries
// its random nonce.
func (k *Keyring) Seal(purpose string, plaintext []byte) []byte {
	aead := k.aead(purpose)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// Open decrypts what Seal produced for the same purpose.
func (k *Keyring) Open(purpose string, sealed []byte) ([]byte, error) {
	aead := k.aead(purpose)
	if len(sealed) < aead.NonceSize() {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (k *Keyring) aead(purpose string) cipher.AEAD {
	block, err := aes.NewCipher(k.derive("aead:" + purpose))
	if err != nil {
		panic(fmt.Sprintf("aes: %v", err)) // key length is fixed at 32
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("gcm: %v", err))
	}
	return aead
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
