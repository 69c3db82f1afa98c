package account_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
)

// TestSeedAccount creates active accounts in development, whose shared
// password works, and refuses outside development.
func TestSeedAccount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		hash, err := f.svc.Hasher().Hash(ctx, "seeded password 123")
		require.NoError(t, err)
		for _, tc := range []struct {
			name, email, phone string
			want               error
		}{
			{"first", "load00001@example.test", "07700 900001", nil},
			{"second", "Load00002@Example.Test", "+447700900002", nil},
			{"taken", "load00001@example.test", "07700 900003", account.ErrEmailTaken},
			{"bad email", "nope", "07700 900004", account.ErrEmailInvalid},
			{"bad phone", "load00005@example.test", "12", account.ErrPhoneInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a, err := f.svc.SeedAccount(ctx, tc.email, tc.phone, hash)
				if tc.want != nil {
					require.ErrorIs(t, err, tc.want)
					return
				}
				require.NoError(t, err)
				got, err := f.svc.Account(ctx, a.ID)
				require.NoError(t, err)
				require.Equal(t, account.StatusActive, got.Status)
				require.NotNil(t, got.PhoneVerifiedAt)
				require.Equal(t, "v1", got.TermsVersion)
				ok, err := f.svc.CheckPassword(ctx, f.actor, tc.email, "seeded password 123")
				require.NoError(t, err)
				require.Equal(t, a.ID, ok.ID)
			})
		}

		keys, err := secrets.NewKeyring(secrets.NewKey())
		require.NoError(t, err)
		prod := account.NewService(account.Config{Issuer: "https://idp.test", TermsVersion: "v1"}, db, keys,
			password.NewHasher(fast, 1), nil, ratelimit.New(db, nil), audit.New(db, nil), metrics.New(), nil)
		_, err = prod.SeedAccount(ctx, "load09999@example.test", "07700 900999", hash)
		require.ErrorIs(t, err, account.ErrNotDevelopment)
	})
}
