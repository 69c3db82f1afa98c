package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// state is what the simulated phone keeps: the server it enrolled with,
// its device id and key, and its platform authenticator (credential and
// counter, exported by virtualwebauthn).
type state struct {
	URL           string                        `json:"url"`
	Origin        string                        `json:"origin"`
	RPID          string                        `json:"rp_id"`
	DeviceID      string                        `json:"device_id"`
	DeviceKeyPEM  string                        `json:"device_key"` // PKCS #8
	Authenticator virtualwebauthn.Authenticator `json:"authenticator"`
	Credential    virtualwebauthn.Credential    `json:"credential"`
	deviceKey     *ecdsa.PrivateKey
}

// newState makes a phone with fresh keys for the server at base, whose
// WebAuthn origin and relying party id are origin and rpID ("" means the
// origin and the host of base).
func newState(base, origin, rpID string) (*state, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url %q must be an http(s) URL", base)
	}
	if origin == "" {
		origin = u.Scheme + "://" + u.Host
	}
	if rpID == "" {
		rpID = u.Hostname()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return &state{
		URL: base, Origin: origin, RPID: rpID,
		DeviceKeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		Authenticator: virtualwebauthn.NewAuthenticator(),
		Credential:    virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2),
		deviceKey:     key,
	}, nil
}

// loadState reads the phone's file.
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state (enrol first): %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	block, _ := pem.Decode([]byte(st.DeviceKeyPEM))
	if block == nil {
		return nil, fmt.Errorf("state %s: no device key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("state %s: device key: %w", path, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || st.DeviceID == "" || st.Credential.Key == nil {
		return nil, fmt.Errorf("state %s: not an enrolled phone", path)
	}
	st.deviceKey = ec
	return &st, nil
}

// save writes the phone's file atomically with mode 0600.
func (st *state) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".idlink-companion-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

func (st *state) rp() virtualwebauthn.RelyingParty {
	return virtualwebauthn.RelyingParty{ID: st.RPID, Name: "idlink", Origin: st.Origin}
}

// attest answers creation options ({"publicKey": …}) as the platform
// authenticator would, with user verification, and keeps the credential.
func (st *state) attest(options []byte) ([]byte, error) {
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	resp := virtualwebauthn.CreateAttestationResponse(st.rp(), st.Authenticator, st.Credential, *ao)
	st.Authenticator.Options.UserHandle = []byte(ao.UserID)
	st.Authenticator.AddCredential(st.Credential)
	return []byte(resp), nil
}

// assert answers request options after the "fingerprint": the counter
// moves on and the assertion verifies the user.
func (st *state) assert(options []byte) ([]byte, error) {
	ao, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	st.Credential.Counter++
	if len(st.Authenticator.Credentials) > 0 {
		st.Authenticator.Credentials[0].Counter = st.Credential.Counter
	}
	return []byte(virtualwebauthn.CreateAssertionResponse(st.rp(), st.Authenticator, st.Credential, *ao)), nil
}

// deviceJWK is the public device key as a JWK.
func (st *state) deviceJWK() (json.RawMessage, error) {
	b, err := (&jose.JSONWebKey{Key: &st.deviceKey.PublicKey}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("device key JWK: %w", err)
	}
	return b, nil
}

// deviceJWT signs the short JWT that authenticates one API call to url.
func (st *state) deviceJWT(url string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: st.deviceKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("device signer: %w", err)
	}
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	return jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: st.DeviceID, Audience: jwt.Audience{url}, ID: fmt.Sprintf("%x", jti),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(30 * time.Second)),
	}).Serialize()
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return errors.New("encode output: " + err.Error())
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
