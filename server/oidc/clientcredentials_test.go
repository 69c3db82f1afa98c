package oidc

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/trust"
)

// Partner scopes are for client_credentials only: /authorize ignores them
// like unknown scopes, and a grant holding one is refused.
func TestPartnerScopesNotGrantedToPeople(t *testing.T) {
	c := &Client{ID: "partner", Scopes: []string{ScopeOpenID, ScopeProfile, ScopeUsersEndpoint, ScopeAccountProvisioning}}
	for _, tc := range []struct {
		requested string
		want      []string
	}{
		{"openid users_endpoint", []string{ScopeOpenID}},
		{"openid profile account_provisioning", []string{ScopeOpenID, ScopeProfile}},
		{"users_endpoint openid", []string{ScopeOpenID}},
	} {
		got, err := ResolveScopes(c, tc.requested, trust.P9)
		require.NoError(t, err, tc.requested)
		require.Equal(t, tc.want, got, tc.requested)
	}
	_, err := ResolveScopes(c, "users_endpoint", trust.P9)
	require.ErrorIs(t, err, ErrInvalidScope, "openid is still required")
	require.ErrorIs(t, checkGrantedScopes(c, []string{ScopeOpenID, ScopeUsersEndpoint}, trust.P9), ErrInvalidScope)
	require.NoError(t, checkGrantedScopes(c, []string{ScopeOpenID}, trust.P9))
}
