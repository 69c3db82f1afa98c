package oidc

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestDecodeFIDOAuthResponse(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	for _, raw := range []string{base64.RawURLEncoding.EncodeToString(body), base64.URLEncoding.EncodeToString(body)} {
		got, err := DecodeFIDOAuthResponse(raw)
		require.NoError(t, err)
		require.Equal(t, body, got)
	}
	for _, raw := range []string{"", "%%%", base64.StdEncoding.EncodeToString([]byte(`{"a":"??>"}`)), "bm90IGpzb24", string(make([]byte, 9000))} {
		_, err := DecodeFIDOAuthResponse(raw)
		require.Error(t, err, raw)
	}
}

func TestFIDORefusal(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
		denied bool
	}{
		{fido.ErrDeviceRemoved, "device_removed", true},
		{fido.ErrCloneDetected, "clone_detected", true},
		{fido.ErrCredentialBlocked, "credential_blocked", true},
		{fido.ErrUserVerification, "user_not_verified", false},
		{fido.ErrCeremonyNotFound, "ceremony_not_found", false},
		{errors.New("database down"), "", false},
	} {
		reason, denied := fidoRefusal(tc.err)
		require.Equal(t, tc.reason, reason)
		require.Equal(t, tc.denied, denied)
	}
}

// FuzzFIDOAuthResponse feeds arbitrary fido_auth_response values through
// what /authorize does with them: decoding, then verification against a
// waiting discoverable ceremony. It must never panic, and anything the
// caller sent must be refused with a known reason (never a server error).
func FuzzFIDOAuthResponse(f *testing.F) {
	db := dbtest.SQLite(f)
	ctx := context.Background()
	svc, err := fido.New(db, fido.Config{RPID: "localhost", RPDisplayName: "idlink", RPOrigins: []string{"http://localhost"}}, nil, time.Now)
	require.NoError(f, err)
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "idlink", Origin: "http://localhost"}
	auth, cred := virtualwebauthn.NewAuthenticator(), virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
	id, options, err := svc.BeginRegistration(ctx, fido.User{AccountID: "acct-a", Name: "a@example.org"}, fido.KindPasskey)
	require.NoError(f, err)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(f, err)
	_, err = svc.FinishRegistration(ctx, "acct-a", id, []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)), "", "")
	require.NoError(f, err)
	auth.Options.UserHandle = []byte(ao.UserID)
	auth.AddCredential(cred)

	_, options, err = svc.BeginDiscoverableLogin(ctx)
	require.NoError(f, err)
	as, err := virtualwebauthn.ParseAssertionOptions(string(options))
	require.NoError(f, err)
	cred.Counter++
	valid := virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *as)
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(valid)))
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(valid[:len(valid)/2])))
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{}`)))
	f.Add("eyJ")
	f.Add("%%%")
	f.Add("")

	f.Fuzz(func(t *testing.T, raw string) {
		body, err := DecodeFIDOAuthResponse(raw)
		if err != nil {
			return
		}
		if _, _, err := svc.BeginDiscoverableLogin(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.FinishLoginByChallenge(ctx, body); err != nil {
			if reason, _ := fidoRefusal(err); reason == "" {
				t.Fatalf("refusal with no reason: %v", err)
			}
		}
	})
}
