package server

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
)

// buildIdentity creates the identity capability over its external
// systems: PDS (the sandbox dataset or the FHIR API), the GP linkage
// sandbox (seeded from the PDS sandbox in development) and the encrypted
// evidence store.
func (s *Server) buildIdentity(ctx context.Context, keys *secrets.Keyring) error {
	var dir pds.Directory
	switch s.cfg.PDSProvider {
	case "fhir":
		key, err := readRSAKey(s.cfg.PDSKeyFile)
		if err != nil {
			return fmt.Errorf("IDLINK_PDS_KEY_FILE: %w", err)
		}
		c, err := pds.NewClient(pds.Config{BaseURL: s.cfg.PDSBaseURL, TokenURL: s.cfg.PDSTokenURL, ClientID: s.cfg.PDSClientID,
			Key: key, KID: s.cfg.PDSKeyID, Now: s.now})
		if err != nil {
			return fmt.Errorf("pds client: %w", err)
		}
		dir = c
	default:
		sandbox := pds.NewSandbox()
		s.PDSSandbox = sandbox
		dir = sandbox
	}
	gpSystem := gp.NewSandbox(s.DB, s.now)
	if s.PDSSandbox != nil {
		var seed []gp.SeedPatient
		for _, p := range s.PDSSandbox.Patients() {
			if p.GPODSCode != "" {
				seed = append(seed, gp.SeedPatient{NHSNumber: p.NHSNumber, ODSCode: p.GPODSCode})
			}
		}
		if _, err := gpSystem.Seed(ctx, seed); err != nil {
			return fmt.Errorf("seed GP linkage sandbox: %w", err)
		}
	}
	s.GP = gpSystem
	store, err := media.New(media.Config{Dir: s.cfg.MediaDir, Key: keys.Derive("identity-media"), KeyID: "1", Now: s.now})
	if err != nil {
		return fmt.Errorf("evidence store: %w", err)
	}
	s.Identity, err = identity.New(identity.Config{MediaRetention: s.cfg.MediaRetention}, identity.Deps{
		DB: s.DB, Accounts: s.Accounts, Grants: s.OIDC, PDS: dir, GP: gpSystem, Media: store,
		Limiter: ratelimit.New(s.DB, s.now), Audit: s.Audit, Checks: s.Metrics, Logger: s.log, Now: s.now,
	})
	if err != nil {
		return err
	}
	s.Login.UseLoginCheck(loginCheck{s.Identity, s.Accounts})
	return nil
}

// loginCheck runs identity's per-login PDS check for the login journey,
// then notes the login on the account (closure of unused accounts counts
// from it).
type loginCheck struct {
	id       *identity.Service
	accounts *account.Service
}

func (l loginCheck) CheckLogin(ctx context.Context, a audit.Actor, accountID string) error {
	err := l.id.CheckLogin(ctx, a, accountID)
	if errors.Is(err, identity.ErrBlocked) {
		return fmt.Errorf("%w: %w", login.ErrAccountBlocked, err)
	}
	if err != nil {
		return err
	}
	return l.accounts.NoteLogin(ctx, accountID)
}

func readRSAKey(path string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

// limitBody refuses request bodies over small bytes (413), except on the
// upload paths, which may carry up to large. The request's Content-Length
// is checked before the (streamed) body is read; a body without one is
// cut off at the limit.
func limitBody(small, large int, uploads ...string) fiber.Handler {
	return func(c fiber.Ctx) error {
		limit := small
		for _, p := range uploads {
			if c.Path() == p {
				limit = large
			}
		}
		n := c.Request().Header.ContentLength()
		if n > limit || (n < 0 && len(c.Body()) > limit) {
			return fiber.NewError(http.StatusRequestEntityTooLarge, "request body too large")
		}
		return c.Next()
	}
}
