package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/secrets"
)

// seededDevice is one seeded companion-app device: the same JSON as the
// state file of cmd/idlink-companion (so that one element can be saved
// as a state file), plus the account it belongs to.
type seededDevice struct {
	URL           string                        `json:"url"`
	Origin        string                        `json:"origin"`
	RPID          string                        `json:"rp_id"`
	DeviceID      string                        `json:"device_id"`
	DeviceKeyPEM  string                        `json:"device_key"` // PKCS #8
	Authenticator virtualwebauthn.Authenticator `json:"authenticator"`
	Credential    virtualwebauthn.Credential    `json:"credential"`
	AccountID     string                        `json:"account_id"`
	Email         string                        `json:"email"`
}

// devCommand runs the development-only commands ("idlink dev …"). They
// refuse unless IDLINK_ENV is explicitly development.
func devCommand(ctx context.Context, cfg config.Config, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	if getenv("IDLINK_ENV") != config.Development || !cfg.Dev() {
		return errors.New("idlink dev commands need IDLINK_ENV=development: they create test data")
	}
	if len(args) == 0 || args[0] != "seed-devices" {
		fmt.Fprintln(stderr, "usage: idlink dev seed-devices -n N -out FILE [-workers W] [-password PW] [-start K]")
		return fmt.Errorf("%w: dev needs a subcommand (seed-devices)", errUsage)
	}
	fs := flag.NewFlagSet("dev seed-devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100, "number of accounts to create, each with one companion-app device")
	out := fs.String("out", "devices.json", "where to write the devices' keys (JSON array, mode 0600)")
	workers := fs.Int("workers", 4, "accounts created in parallel")
	pw := fs.String("password", "load-test-password", "the password every seeded account shares")
	start := fs.Int("start", 1, "number of the first account (emails loadNNNNN@example.test)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *n < 1 || *n > 1_000_000 || *workers < 1 || *workers > 64 || *start < 0 {
		return fmt.Errorf("%w: -n must be 1 to 1000000, -workers 1 to 64", errUsage)
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: server.NewLogger("warn")})
	if err != nil {
		return err
	}
	defer srv.Close()
	began := time.Now()
	devices, err := seedDevices(ctx, srv, cfg, *n, *start, *workers, *pw)
	if err != nil {
		return err
	}
	if err := writeSecretJSON(*out, devices); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d accounts with one device each in %s; keys in %s\n", len(devices),
		time.Since(began).Round(time.Millisecond), *out)
	return nil
}

// seedDevices creates n active accounts, each with a companion-app device
// whose FIDO credential is registered through the real ceremony. The
// accounts share one password hash (Argon2 once, not per account).
func seedDevices(ctx context.Context, srv *server.Server, cfg config.Config, n, start, workers int, password string) ([]seededDevice, error) {
	if len(cfg.WebAuthnOrigins) == 0 {
		return nil, errors.New("no WebAuthn origin configured")
	}
	hash, err := srv.Accounts.Hasher().Hash(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("hash the shared password: %w", err)
	}
	out := make([]seededDevice, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				d, err := seedOne(ctx, srv, cfg, start+i, hash)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("account %d: %w", start+i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				out[i] = d
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, ctx.Err()
}

// seedOne creates account number k and its device.
func seedOne(ctx context.Context, srv *server.Server, cfg config.Config, k int, hash string) (seededDevice, error) {
	email := fmt.Sprintf("load%05d@example.test", k)
	phone := fmt.Sprintf("+447700900%03d", k%1000) // Ofcom's drama range
	acct, err := srv.Accounts.SeedAccount(ctx, email, phone, hash)
	if err != nil {
		return seededDevice{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return seededDevice{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return seededDevice{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return seededDevice{}, err
	}
	d := seededDevice{
		URL: cfg.Issuer, Origin: cfg.WebAuthnOrigins[0], RPID: cfg.WebAuthnRPID,
		DeviceID:      secrets.NewID(),
		DeviceKeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		Authenticator: virtualwebauthn.NewAuthenticator(),
		Credential:    virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2),
		AccountID:     acct.ID, Email: email,
	}
	ceremony, options, err := srv.FIDO.BeginRegistration(ctx, fido.User{AccountID: acct.ID, Name: email}, fido.KindApp)
	if err != nil {
		return seededDevice{}, err
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		return seededDevice{}, fmt.Errorf("creation options: %w", err)
	}
	rp := virtualwebauthn.RelyingParty{ID: d.RPID, Name: "idlink", Origin: d.Origin}
	attestation := virtualwebauthn.CreateAttestationResponse(rp, d.Authenticator, d.Credential, *ao)
	d.Authenticator.Options.UserHandle = []byte(ao.UserID)
	d.Authenticator.AddCredential(d.Credential)
	cred, err := srv.FIDO.FinishRegistration(ctx, acct.ID, ceremony, []byte(attestation), "Load test phone", d.DeviceID)
	if err != nil {
		return seededDevice{}, fmt.Errorf("register the app credential: %w", err)
	}
	_, err = srv.Devices.Register(ctx, device.Device{ID: d.DeviceID, AccountID: acct.ID, Name: "Load test phone",
		Platform: device.PlatformAndroid, PublicKey: spki, FIDOCredentialID: cred.ID})
	if err != nil {
		return seededDevice{}, fmt.Errorf("register the device: %w", err)
	}
	return d, nil
}

// writeSecretJSON writes v as JSON to path with mode 0600, atomically.
func writeSecretJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".idlink-seed-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
