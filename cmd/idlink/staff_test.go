package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
)

func TestStaffCommand(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		env := map[string]string{"IDLINK_DATA_DIR": t.TempDir(), "IDLINK_DATABASE_URL": dbURL, "IDLINK_LOG_LEVEL": "error"}
		idlink := func(args ...string) (string, error) {
			var out, errOut bytes.Buffer
			err := run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
			return out.String() + errOut.String(), err
		}

		db, err := migrations.Open(ctx, dbURL)
		require.NoError(t, err)
		defer db.Close()
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, a := range []struct{ id, email string }{{"acct-alice", "alice@nhs.example"}, {"acct-bob", "bob@nhs.example"}} {
			_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO accounts (id, email, password_hash, terms_version,
				terms_accepted_at, email_verified_at, password_changed_at, created_at, updated_at)
				VALUES (?, ?, 'x', '1', ?, ?, ?, ?, ?)`), a.id, a.email, now, now, now, now, now)
			require.NoError(t, err)
		}
		role := func(id string) string {
			var r []string
			require.NoError(t, db.SelectContext(ctx, &r, db.Rebind(`SELECT role FROM staff_roles WHERE account_id = ? ORDER BY role`), id))
			return strings.Join(r, ",")
		}

		out, err := idlink("staff", "list")
		require.NoError(t, err, out)
		require.Equal(t, "EMAIL  ROLES  ACCOUNT", strings.TrimSpace(out))

		out, err = idlink("staff", "set", "-email", "Alice@NHS.example", "-role", "id_checker")
		require.NoError(t, err, out)
		require.Contains(t, out, "alice@nhs.example is now id_checker")
		require.Equal(t, "id_checker", role("acct-alice"))
		out, err = idlink("staff", "set", "-email", "bob@nhs.example", "-role", "admin")
		require.NoError(t, err, out)
		out, err = idlink("staff", "set", "-email", "alice@nhs.example", "-role", "admin")
		require.NoError(t, err, out)
		require.Equal(t, "admin", role("acct-alice"))
		// Roles combine.
		out, err = idlink("staff", "set", "-email", "alice@nhs.example", "-role", "support,admin")
		require.NoError(t, err, out)
		require.Equal(t, "admin,support", role("acct-alice"))
		out, err = idlink("staff", "list")
		require.NoError(t, err, out)
		require.Contains(t, out, "admin,support")

		out, err = idlink("staff", "list")
		require.NoError(t, err, out)
		require.Contains(t, out, "alice@nhs.example")
		require.Contains(t, out, "bob@nhs.example")
		require.Contains(t, out, "acct-bob")

		out, err = idlink("staff", "remove", "-email", "alice@nhs.example")
		require.NoError(t, err, out)
		require.Contains(t, out, "alice@nhs.example is no longer staff")
		require.Equal(t, "", role("acct-alice"))
		require.Equal(t, "admin", role("acct-bob"))

		var events int
		require.NoError(t, db.GetContext(ctx, &events, `SELECT COUNT(*) FROM audit_events WHERE type = 'staff.role_set'`))
		require.Equal(t, 5, events)

		for _, args := range [][]string{
			{"staff"},
			{"staff", "promote"},
			{"staff", "set", "-email", "alice@nhs.example"},
			{"staff", "set", "-email", "alice@nhs.example", "-role", "superuser"},
			{"staff", "set", "-email", "nobody@nhs.example", "-role", "admin"},
			{"staff", "remove", "-email", "alice@nhs.example"}, // not staff any more
			{"staff", "remove"},
		} {
			out, err := idlink(args...)
			require.Error(t, err, "%v: %s", args, out)
		}
		require.Equal(t, "", role("acct-alice"))
	})
}
