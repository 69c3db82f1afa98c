package gp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
)

var jane = nhsnumber.MustParse("9000000009")

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   gp.Details
		want gp.Details
		ok   bool
	}{
		{"canonical", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "1234567890"}, gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "1234567890"}, true},
		{"typed loosely", gp.Details{LinkageKey: "8yxw-qkz3 dhr7n", ODSCode: " y12345 ", AccountID: "123 456 7890"}, gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "1234567890"}, true},
		{"short ods", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y1", AccountID: "1234567890"}, gp.Details{}, false},
		{"long ods", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y123456", AccountID: "1234567890"}, gp.Details{}, false},
		{"ods punctuation", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y1_345", AccountID: "1234567890"}, gp.Details{}, false},
		{"account letters", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "12345A7890"}, gp.Details{}, false},
		{"account short", gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "12345"}, gp.Details{}, false},
		{"key ambiguous char", gp.Details{LinkageKey: "0YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "1234567890"}, gp.Details{}, false},
		{"key short", gp.Details{LinkageKey: "8YXWQKZ3DHR7", ODSCode: "Y12345", AccountID: "1234567890"}, gp.Details{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Normalize()
			if !tt.ok {
				require.ErrorIs(t, err, gp.ErrInvalid)
				require.NotContains(t, err.Error(), "QKZ3", "errors never repeat the key")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	d := gp.Details{LinkageKey: "8YXWQKZ3DHR7N", ODSCode: "Y12345", AccountID: "1234567890"}
	require.NotContains(t, fmt.Sprint(d), "8YXWQKZ3DHR7N")
	require.NotContains(t, fmt.Sprintf("%v %+v", gp.Linkage{LinkageKey: "8YXWQKZ3DHR7N"}, gp.Linkage{LinkageKey: "8YXWQKZ3DHR7N"}), "8YXWQKZ3DHR7N")
}

func TestLinkageAndVerify(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		s := gp.NewSandbox(db, func() time.Time { return now })

		l, err := s.LinkageFor(ctx, jane, "y12345")
		require.NoError(t, err)
		require.Equal(t, jane, l.NHSNumber)
		require.Equal(t, "Y12345", l.ODSCode)
		require.Len(t, l.LinkageKey, gp.LinkageKeyLength)
		require.Len(t, l.AccountID, gp.AccountIDLength)
		require.True(t, l.CreatedAt.Equal(now))

		again, err := s.LinkageFor(ctx, jane, "Y12345")
		require.NoError(t, err)
		require.Equal(t, l, again, "looked up, not created again")

		other, err := s.LinkageFor(ctx, jane, "Y90001")
		require.NoError(t, err)
		require.NotEqual(t, l.LinkageKey, other.LinkageKey, "one linkage per practice")

		good := gp.Details{LinkageKey: l.LinkageKey, ODSCode: l.ODSCode, AccountID: l.AccountID}
		got, err := s.Verify(ctx, good)
		require.NoError(t, err)
		require.Equal(t, jane, got)

		wrongKey := good
		wrongKey.LinkageKey = "2222222222222"
		wrongAccount := good
		wrongAccount.AccountID = "9999999999"
		wrongPractice := good
		wrongPractice.ODSCode = "Y90001"
		for name, d := range map[string]gp.Details{"key": wrongKey, "account": wrongAccount, "practice": wrongPractice} {
			_, err := s.Verify(ctx, d)
			require.ErrorIs(t, err, gp.ErrNoMatch, name)
			require.Equal(t, "verify GP details: "+gp.ErrNoMatch.Error(), err.Error(), "the error does not say which part was wrong")
		}
		_, err = s.Verify(ctx, gp.Details{LinkageKey: "x", ODSCode: "Y12345", AccountID: "1234567890"})
		require.ErrorIs(t, err, gp.ErrInvalid)
		_, err = s.LinkageFor(ctx, jane, "Y!")
		require.ErrorIs(t, err, gp.ErrInvalid)
		_, err = s.LinkageFor(ctx, nhsnumber.Number{}, "Y12345")
		require.ErrorIs(t, err, gp.ErrInvalid)

		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.LinkageFor(cancelled, nhsnumber.MustParse("9000000033"), "Y12345")
		require.ErrorIs(t, err, gp.ErrUnavailable)
	})
}

func TestSeedFromPDSSandbox(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		s := gp.NewSandbox(db, nil)
		var seed []gp.SeedPatient
		withGP := 0
		for _, p := range pds.NewSandbox().Patients() {
			seed = append(seed, gp.SeedPatient{NHSNumber: p.NHSNumber, ODSCode: p.GPODSCode})
			if p.GPODSCode != "" {
				withGP++
			}
		}
		n, err := s.Seed(ctx, seed)
		require.NoError(t, err)
		require.Equal(t, withGP, n)
		first, err := s.LinkageFor(ctx, jane, "Y12345")
		require.NoError(t, err)

		n, err = s.Seed(ctx, seed)
		require.NoError(t, err, "idempotent")
		require.Equal(t, withGP, n)
		var rows int
		require.NoError(t, db.GetContext(ctx, &rows, `SELECT COUNT(*) FROM gp_linkages`))
		require.Equal(t, withGP, rows)
		again, err := s.LinkageFor(ctx, jane, "Y12345")
		require.NoError(t, err)
		require.Equal(t, first, again)
	})
}

func TestConcurrentLinkageForCreatesOne(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		s := gp.NewSandbox(db, nil)
		var wg sync.WaitGroup
		results := make(chan gp.Linkage, 50)
		errs := make(chan error, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := s.LinkageFor(context.Background(), jane, "Y12345")
				if err != nil {
					errs <- err
					return
				}
				results <- l
			}()
		}
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		keys := map[string]bool{}
		for l := range results {
			keys[l.LinkageKey+"/"+l.AccountID] = true
		}
		require.Len(t, keys, 1, "every caller got the same linkage")
		var rows int
		require.NoError(t, db.GetContext(context.Background(), &rows, `SELECT COUNT(*) FROM gp_linkages`))
		require.Equal(t, 1, rows)
	})
}
