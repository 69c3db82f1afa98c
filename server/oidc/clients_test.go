package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/trust"
)

func TestValidateRedirectURI(t *testing.T) {
	tests := []struct {
		uri         string
		public, dev bool
		wantErr     string
	}{
		{uri: "https://rp.example/cb"},
		{uri: "https://rp.example:8443/a/b"},
		{uri: "https://rp.example/cb?x=1", wantErr: "query"},
		{uri: "https://rp.example/cb?", wantErr: "query"},
		{uri: "https://rp.example/cb#frag", wantErr: "fragment"},
		{uri: "https://rp.example/cb#", wantErr: "fragment"},
		{uri: "https://*.rp.example/cb", wantErr: "wildcard"},
		{uri: "https://rp.example/*", wantErr: "wildcard"},
		{uri: "https://user:pw@rp.example/cb", wantErr: "user information"},
		{uri: "https:///cb", wantErr: "without a host"},
		{uri: "/cb", wantErr: "absolute"},
		{uri: "rp.example/cb", wantErr: "absolute"},
		{uri: "", wantErr: "empty"},
		{uri: "https://rp.example/c b", wantErr: "white space"},
		{uri: "https://rp.example/" + strings.Repeat("a", 2000), wantErr: "longer"},
		{uri: "http://rp.example/cb", dev: true, wantErr: "loopback"},
		{uri: "http://localhost:8081/cb", wantErr: "https"},
		{uri: "http://localhost:8081/cb", dev: true},
		{uri: "http://127.0.0.1:8081/cb", dev: true},
		{uri: "http://[::1]:8081/cb", dev: true},
		{uri: "http://127.0.0.2/cb", dev: true, wantErr: "loopback"},
		{uri: "com.example.app:/callback", wantErr: "public native"},
		{uri: "com.example.app:/callback", public: true},
		{uri: "idlink-companion://callback", public: true},
		{uri: "javascript://alert(1)", public: true, wantErr: "cannot be a redirect"},
		{uri: "data:text/html,hi", public: true, wantErr: "cannot be a redirect"},
		{uri: "com.example.app:callback", public: true, wantErr: "must have a path"},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			err := validateRedirectURI(tc.uri, tc.public, tc.dev)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func smallKeyPEM(t *testing.T) string {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	return publicPEM(t, k)
}

func TestClientValidation(t *testing.T) {
	key := publicPEM(t, testKey(t, "rp1"))
	privDER, err := x509.MarshalPKCS8PrivateKey(testKey(t, "rp1"))
	require.NoError(t, err)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&testKey(t, "rp1").PublicKey)}))
	valid := func() Client {
		return Client{ID: "rp-x", Name: "RP", RedirectURIs: []string{"https://rp.example/cb"}, PublicKeyPEM: key}
	}
	tests := []struct {
		name      string
		mutate    func(*Client)
		wantField string
		check     func(*testing.T, *Client)
	}{
		{name: "defaults", mutate: func(c *Client) {}, check: func(t *testing.T, c *Client) {
			require.Equal(t, []string{"openid"}, c.Scopes)
			// NHS login's default less P9.Cp.Ck, which nobody can meet here.
			require.Equal(t, []string{"P9.Cp.Cd", "P9.Cm"}, c.VTR)
			require.Equal(t, []string{"P9.Cp.Cd", "P9.Cm"}, c.DefaultVTR)
			require.Equal(t, []string{"RS512"}, c.AuthAlgs)
			require.Equal(t, IDTokenClaimsNHS, c.IDTokenClaims)
			require.Equal(t, OAEPSHA1, c.MetadataOAEPHash)
		}},
		{name: "Ck vector", mutate: func(c *Client) { c.VTR = []string{"P9.Cp.Cd", "P9.Cp.Ck"} }, wantField: "vtr"},
		{name: "Ck default vector", mutate: func(c *Client) { c.DefaultVTR = []string{"P5.Cp.Ck"} }, wantField: "default_vtr"},
		{name: "level-only vector", mutate: func(c *Client) { c.VTR = []string{"P9", "P9.Cp.Cd"}; c.DefaultVTR = []string{"P9"} }, check: func(t *testing.T, c *Client) {
			require.Equal(t, []string{"P9", "P9.Cp.Cd"}, c.VTR)
		}},
		{name: "id_token_claims all", mutate: func(c *Client) { c.IDTokenClaims = "all" }, check: func(t *testing.T, c *Client) {
			require.Equal(t, IDTokenClaimsAll, c.IDTokenClaims)
		}},
		{name: "bad id_token_claims", mutate: func(c *Client) { c.IDTokenClaims = "some" }, wantField: "id_token_claims"},
		{name: "oaep sha256", mutate: func(c *Client) { c.MetadataOAEPHash = "sha256" }, check: func(t *testing.T, c *Client) {
			require.Equal(t, OAEPSHA256, c.MetadataOAEPHash)
		}},
		{name: "bad oaep hash", mutate: func(c *Client) { c.MetadataOAEPHash = "md5" }, wantField: "client_metadata_oaep_hash"},
		{name: "bad client_id", mutate: func(c *Client) { c.ID = "a b" }, wantField: "client_id"},
		{name: "no name", mutate: func(c *Client) { c.Name = " " }, wantField: "name"},
		{name: "control in name", mutate: func(c *Client) { c.Name = "a\x00b" }, wantField: "name"},
		{name: "no redirect", mutate: func(c *Client) { c.RedirectURIs = nil }, wantField: "redirect_uris"},
		{name: "eleven redirects", mutate: func(c *Client) {
			c.RedirectURIs = nil
			for i := range 11 {
				c.RedirectURIs = append(c.RedirectURIs, "https://rp.example/cb"+strings.Repeat("x", i))
			}
		}, wantField: "redirect_uris"},
		{name: "ten redirects", mutate: func(c *Client) {
			c.RedirectURIs = nil
			for i := range 10 {
				c.RedirectURIs = append(c.RedirectURIs, "https://rp.example/cb"+strings.Repeat("x", i))
			}
		}},
		{name: "duplicate redirect", mutate: func(c *Client) { c.RedirectURIs = []string{"https://a/cb", "https://a/cb"} }, wantField: "redirect_uris"},
		{name: "redirect with query", mutate: func(c *Client) { c.RedirectURIs = []string{"https://a/cb?x"} }, wantField: "redirect_uris"},
		{name: "unknown scope", mutate: func(c *Client) { c.Scopes = []string{"openid", "offline_access"} }, wantField: "scopes"},
		{name: "scopes without openid", mutate: func(c *Client) { c.Scopes = []string{"email"} }, wantField: "scopes"},
		{name: "bad vector", mutate: func(c *Client) { c.VTR = []string{"P7.Cp"} }, wantField: "vtr"},
		{name: "bad default vector", mutate: func(c *Client) { c.DefaultVTR = []string{"P9.Cx"} }, wantField: "default_vtr"},
		{name: "default not allowed", mutate: func(c *Client) {
			c.VTR = []string{"P5.Cp.Cd"}
			c.DefaultVTR = []string{"P9.Cp.Cd"}
		}, wantField: "default_vtr"},
		{name: "allowed without NHS default needs default", mutate: func(c *Client) { c.VTR = []string{"P5.Cp.Cd"} }, wantField: "default_vtr"},
		{name: "default only", mutate: func(c *Client) { c.DefaultVTR = []string{"P5.Cp.Cd"} }, check: func(t *testing.T, c *Client) {
			require.Equal(t, []string{"P5.Cp.Cd"}, c.VTR)
		}},
		{name: "equivalent default written differently", mutate: func(c *Client) {
			c.VTR = []string{"P5.Cp.Cd", "Cp.Cd"}
			c.DefaultVTR = []string{"P5.Cd.Cp", "P0.Cp.Cd"}
		}},
		{name: "missing key", mutate: func(c *Client) { c.PublicKeyPEM = "" }, wantField: "public_key_pem"},
		{name: "garbage key", mutate: func(c *Client) { c.PublicKeyPEM = "hello" }, wantField: "public_key_pem"},
		{name: "private key", mutate: func(c *Client) { c.PublicKeyPEM = privPEM }, wantField: "public_key_pem"},
		{name: "1024-bit key", mutate: func(c *Client) { c.PublicKeyPEM = smallKeyPEM(t) }, wantField: "public_key_pem"},
		{name: "two PEM blocks", mutate: func(c *Client) { c.PublicKeyPEM = key + key }, wantField: "public_key_pem"},
		{name: "PKCS1 key normalized", mutate: func(c *Client) { c.PublicKeyPEM = pkcs1 }, check: func(t *testing.T, c *Client) {
			require.Equal(t, key, c.PublicKeyPEM)
		}},
		{name: "HS256 refused", mutate: func(c *Client) { c.AuthAlgs = []string{"HS256"} }, wantField: "token_endpoint_auth_signing_algs"},
		{name: "none refused", mutate: func(c *Client) { c.AuthAlgs = []string{"none"} }, wantField: "token_endpoint_auth_signing_algs"},
		{name: "PS256 ok", mutate: func(c *Client) { c.AuthAlgs = []string{"PS256", "RS512"} }},
		{name: "public with key", mutate: func(c *Client) { c.Public = true }, wantField: "public_key_pem"},
		{name: "public", mutate: func(c *Client) {
			c.Public, c.PublicKeyPEM = true, ""
			c.RedirectURIs = []string{"com.example.app:/cb"}
		}, check: func(t *testing.T, c *Client) { require.Empty(t, c.AuthAlgs) }},
		{name: "public with algs", mutate: func(c *Client) {
			c.Public, c.PublicKeyPEM, c.AuthAlgs = true, "", []string{"RS512"}
		}, wantField: "token_endpoint_auth_signing_algs"},
		{name: "public with client_metadata", mutate: func(c *Client) {
			c.Public, c.PublicKeyPEM = true, ""
			c.Scopes = []string{"openid", "client_metadata"}
		}, wantField: "scopes"},
		{name: "private-use scheme needs public", mutate: func(c *Client) { c.RedirectURIs = []string{"com.example.app:/cb"} }, wantField: "redirect_uris"},
	}
	cs := &Clients{now: time.Now}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := cs.normalize(&c)
			if tc.wantField != "" {
				var fe *ClientFieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, tc.wantField, fe.Field, "error: %v", err)
				require.ErrorIs(t, err, ErrInvalidClient)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, &c)
			}
		})
	}
}

func TestClientsCRUD(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		cs := e.srv.Clients()
		c, err := cs.Create(ctx, Client{
			Name: "New RP", RedirectURIs: []string{"https://new.example/cb"},
			Scopes: []string{"openid", "email"}, PublicKeyPEM: publicPEM(t, testKey(t, "rp2")),
		})
		require.NoError(t, err)
		require.Len(t, c.ID, 26, "generated client_id")
		require.NotEqual(t, c.ID, c.Name)

		got, err := cs.Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.ID, got.ID)
		require.Equal(t, c.Scopes, got.Scopes)
		require.Equal(t, c.PublicKeyPEM, got.PublicKeyPEM)
		require.True(t, c.CreatedAt.Equal(got.CreatedAt))
		require.NotNil(t, got.publicKey)

		_, err = cs.Create(ctx, Client{ID: c.ID, Name: "dup", RedirectURIs: []string{"https://x/cb"}, PublicKeyPEM: c.PublicKeyPEM})
		require.ErrorIs(t, err, ErrClientExists)

		got.Scopes = []string{"openid", "phone"}
		got.RefreshTokens = true
		e.clock.Advance(time.Minute)
		upd, err := cs.Update(ctx, *got)
		require.NoError(t, err)
		require.True(t, upd.UpdatedAt.After(upd.CreatedAt))
		require.True(t, upd.CreatedAt.Equal(c.CreatedAt))
		got, err = cs.Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"openid", "phone"}, got.Scopes)
		require.True(t, got.RefreshTokens)

		got.RedirectURIs = []string{"https://x/cb#f"}
		_, err = cs.Update(ctx, *got)
		require.ErrorIs(t, err, ErrInvalidClient)

		all, err := cs.List(ctx)
		require.NoError(t, err)
		require.Len(t, all, 3) // rp1, app1, and this one

		require.NoError(t, cs.Delete(ctx, c.ID))
		_, err = cs.Get(ctx, c.ID)
		require.ErrorIs(t, err, ErrClientNotFound)
		require.ErrorIs(t, cs.Delete(ctx, c.ID), ErrClientNotFound)
		got.RedirectURIs = []string{"https://x/cb"}
		_, err = cs.Update(ctx, *got)
		require.ErrorIs(t, err, ErrClientNotFound)
	})
}

func TestDeleteClientRevokesItsTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		tokens := e.login(nil)
		require.NoError(t, e.srv.Clients().Delete(context.Background(), e.rp.ID))
		resp, _ := e.userinfo(tokens["access_token"].(string))
		require.Equal(t, 401, resp.StatusCode)
		require.Zero(t, count(t, db, `SELECT COUNT(*) FROM oidc_refresh_tokens`))
	})
}

func TestHasRedirectURIFollowsMode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		dev := newEnv(t, db, func(c *Config) { c.Development = true })
		ctx := context.Background()
		c, err := dev.srv.Clients().Create(ctx, Client{
			ID: "local", Name: "Local", RedirectURIs: []string{"http://localhost:8081/cb", "https://rp.example/cb"},
			PublicKeyPEM: publicPEM(t, testKey(t, "rp2")),
		})
		require.NoError(t, err)
		require.True(t, c.HasRedirectURI("http://localhost:8081/cb"))
		require.True(t, c.HasRedirectURI("https://rp.example/cb"))
		require.False(t, c.HasRedirectURI("https://rp.example/cb/"), "exact match only")
		require.False(t, c.HasRedirectURI("https://rp.example/cb?x=1"))
		require.False(t, c.HasRedirectURI("HTTPS://rp.example/cb"))

		// The same registration read by a production server.
		prod := dev.replica()
		prod.clients.development = false
		got, err := prod.Clients().Get(ctx, "local")
		require.NoError(t, err)
		require.False(t, got.HasRedirectURI("http://localhost:8081/cb"), "http loopback only in development")
		require.True(t, got.HasRedirectURI("https://rp.example/cb"))
	})
}

func TestRequestedVectors(t *testing.T) {
	cs := &Clients{now: time.Now}
	c := Client{ID: "rp-x", Name: "RP", RedirectURIs: []string{"https://rp/cb"}, PublicKeyPEM: publicPEM(t, testKey(t, "rp1")),
		VTR: []string{"P5.Cp.Cd", "P5.Cm", "P9.Cp.Cd", "P9.Cm"}, DefaultVTR: []string{"P9.Cp.Cd", "P9.Cm"}}
	require.NoError(t, cs.normalize(&c))
	tests := []struct {
		vtr     string
		want    string
		wantErr error
	}{
		{vtr: "", want: `["P9.Cp.Cd","P9.Cm"]`},
		{vtr: `["P5.Cp.Cd", "P5.Cm"]`, want: `["P5.Cp.Cd","P5.Cm"]`},
		{vtr: `["P9.Cd.Cp"]`, want: `["P9.Cd.Cp"]`},
		// Ck vectors cannot be met here: passed over beside others (NHS
		// login's default, the NHS App's list), refused alone.
		{vtr: `["P9.Cp.Ck"]`, wantErr: ErrVectorNotAllowed},
		{vtr: `["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`, want: `["P9.Cp.Cd","P9.Cm"]`},
		{vtr: `["P5.Cp.Cd", "P5.Cp.Ck", "P5.Cm"]`, want: `["P5.Cp.Cd","P5.Cm"]`},
		// Omitted components and stray spaces, as NHS login accepts them.
		{vtr: `["P9"]`, want: `["P9"]`},
		{vtr: `["P5"]`, want: `["P5"]`},
		{vtr: `["P0"]`, wantErr: ErrVectorNotAllowed},
		{vtr: `["P9.Cp.Cd "]`, want: `["P9.Cp.Cd"]`},
		{vtr: `["P0.Cp"]`, wantErr: ErrVectorNotAllowed},
		{vtr: `["P9.Cx"]`, wantErr: trust.ErrUnknownComponent},
		{vtr: `P9.Cm`, wantErr: trust.ErrMalformed},
		{vtr: `[]`, wantErr: trust.ErrEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.vtr, func(t *testing.T) {
			vs, err := c.RequestedVectors(tc.vtr)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, trust.FormatVTR(vs))
		})
	}
	require.Len(t, c.AllowedVectors(), 4)
	require.Len(t, c.DefaultVectors(), 2)

	// A client stored before Ck vectors were refused: its default list
	// still names one, which requests without vtr pass over.
	old := c.clone()
	old.vtr, _ = trust.ParseVTR(`["P9.Cp.Cd","P9.Cp.Ck","P9.Cm"]`)
	old.defaultVTR = old.AllowedVectors()
	vs, err := old.RequestedVectors("")
	require.NoError(t, err)
	require.Equal(t, `["P9.Cp.Cd","P9.Cm"]`, trust.FormatVTR(vs))
	require.Len(t, old.DefaultVectors(), 3, "the stored list is not changed")
}

func TestResolveScopes(t *testing.T) {
	cs := &Clients{now: time.Now}
	c := Client{ID: "rp-x", Name: "RP", RedirectURIs: []string{"https://rp/cb"}, PublicKeyPEM: publicPEM(t, testKey(t, "rp1")),
		Scopes: []string{"openid", "profile", "basic_demographics", "email", "phone", "gp_integration_credentials", "gp_registration_details"}}
	require.NoError(t, cs.normalize(&c))
	tests := []struct {
		name      string
		requested string
		level     trust.Level
		want      []string
		wantErr   bool
	}{
		{name: "openid only", requested: "openid", level: trust.P0, want: []string{"openid"}},
		{name: "missing openid", requested: "profile email", level: trust.P9, wantErr: true},
		{name: "empty", requested: "", level: trust.P9, wantErr: true},
		{name: "unknown ignored", requested: "openid offline_access foo email", level: trust.P0, want: []string{"openid", "email"}},
		{name: "not approved", requested: "openid landline", level: trust.P9, wantErr: true},
		{name: "profile with basic_demographics", requested: "openid profile basic_demographics", level: trust.P9, wantErr: true},
		{name: "P0 drops P5 scopes", requested: "openid profile email gp_registration_details", level: trust.P0, want: []string{"openid", "email"}},
		{name: "P5 keeps profile", requested: "openid profile email gp_integration_credentials", level: trust.P5, want: []string{"openid", "profile", "email"}},
		{name: "P9 keeps all", requested: "openid profile gp_integration_credentials", level: trust.P9, want: []string{"openid", "profile", "gp_integration_credentials"}},
		{name: "duplicates and whitespace", requested: " openid  email\topenid ", level: trust.P0, want: []string{"openid", "email"}},
		{name: "too long", requested: "openid " + strings.Repeat("x", 2000), level: trust.P0, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveScopes(&c, tc.requested, tc.level)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrInvalidScope)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseRSAPublicKeyPEMRejectsNonRSA(t *testing.T) {
	_, err := parseRSAPublicKeyPEM("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrInvalidClient))
}
