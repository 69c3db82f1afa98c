package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/idlink/idlink/server/secrets"
)

// Development-mode demo clients.
const (
	// DemoClientID is the demo relying party's client_id.
	DemoClientID = "idlink-demo-rp"
	// CompanionClientID is the companion app's client_id (a public client).
	CompanionClientID = "idlink-companion"
	// CompanionRedirectURI is the companion app's private-use-scheme
	// redirect URI (RFC 8252).
	CompanionRedirectURI = "idlink-companion://callback"
)

// DemoRedirectURIs returns the demo relying party's redirect URIs.
func DemoRedirectURIs() []string {
	return []string{"http://localhost:8081/callback", "http://127.0.0.1:8081/callback"}
}

// DemoClients reports the development clients EnsureDemoClients made sure
// of.
type DemoClients struct {
	// RP is the demo relying party, whose private key is at RPKeyPath.
	RP        *Client
	RPKeyPath string
	// Companion is the companion app's public client.
	Companion *Client
}

// EnsureDemoClients registers, in development mode only, the demo relying
// party (client_id DemoClientID: loopback redirect URIs on port 8081, every
// scope, every NHS profile vector, refresh tokens) and the companion app
// (CompanionClientID: public, PKCE, CompanionRedirectURI, and the only
// client approved for ScopeDeviceEnrolment). The relying
// party's RSA private key is read from keyPath (PKCS #8 PEM), or generated
// and written there (mode 0600) when the file does not exist; the
// registered public key is kept in step with it. Clients that exist are
// otherwise left as an operator may have changed them.
func (s *Server) EnsureDemoClients(ctx context.Context, keyPath string) (DemoClients, error) {
	if !s.cfg.Development {
		return DemoClients{}, fmt.Errorf("demo clients: %w", ErrNotDevelopment)
	}
	priv, err := loadOrCreateKey(keyPath)
	if err != nil {
		return DemoClients{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return DemoClients{}, fmt.Errorf("demo client key: %w", err)
	}
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	rp, err := s.ensureClient(ctx, Client{
		ID:            DemoClientID,
		Name:          "idlink demo relying party",
		RedirectURIs:  DemoRedirectURIs(),
		Scopes:        SupportedScopes(),
		VTR:           NHSProfileVectors(),
		PublicKeyPEM:  pubPEM,
		RefreshTokens: true,
	})
	if err != nil {
		return DemoClients{}, err
	}
	if rp.PublicKeyPEM != pubPEM {
		rp.PublicKeyPEM = pubPEM
		if rp, err = s.clients.Update(ctx, *rp); err != nil {
			return DemoClients{}, fmt.Errorf("demo client key: %w", err)
		}
	}
	companion, err := s.ensureClient(ctx, Client{
		ID:           CompanionClientID,
		Name:         "idlink companion app",
		RedirectURIs: []string{CompanionRedirectURI},
		Scopes: append(slices.DeleteFunc(SupportedScopes(), func(sc string) bool {
			return sc == ScopeClientMetadata // needs a client key
		}), ScopeDeviceEnrolment),
		VTR:           NHSProfileVectors(),
		RefreshTokens: true,
		Public:        true,
	})
	if err != nil {
		return DemoClients{}, err
	}
	if !companion.AllowsScope(ScopeDeviceEnrolment) {
		// Registered before the app could enrol: it needs the scope.
		companion.Scopes = append(companion.Scopes, ScopeDeviceEnrolment)
		if companion, err = s.clients.Update(ctx, *companion); err != nil {
			return DemoClients{}, fmt.Errorf("demo companion client: %w", err)
		}
	}
	return DemoClients{RP: rp, RPKeyPath: keyPath, Companion: companion}, nil
}

// ensureClient returns the client with c's ID, creating it from c when
// missing (tolerating a concurrent creation).
func (s *Server) ensureClient(ctx context.Context, c Client) (*Client, error) {
	got, err := s.clients.Get(ctx, c.ID)
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, ErrClientNotFound) {
		return nil, err
	}
	created, err := s.clients.Create(ctx, c)
	if errors.Is(err, ErrClientExists) {
		return s.clients.Get(ctx, c.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("demo client %s: %w", c.ID, err)
	}
	return created, nil
}

// loadOrCreateKey reads an RSA private key (PKCS #8 or PKCS #1 PEM) from
// path, or generates a 2048-bit one and writes it there atomically.
func loadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	if path == "" {
		return nil, errors.New("demo client key: no key path")
	}
	b, err := os.ReadFile(path)
	if err == nil {
		return parseRSAPrivateKeyPEM(b, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".demo-key-*")
	if err != nil {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	// Link rather than rename, so that a key written meanwhile by another
	// process is never replaced: both then use the first one written.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateKey(path)
		}
		return nil, fmt.Errorf("demo client key: %w", err)
	}
	return priv, nil
}

func parseRSAPrivateKeyPEM(b []byte, path string) (*rsa.PrivateKey, error) {
	key, err := secrets.ParseRSAPrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("demo client key %s: %w", path, err)
	}
	return key, nil
}
