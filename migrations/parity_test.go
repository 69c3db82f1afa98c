package migrations_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/migrations/dbtest"
)

// schema is what the parity test compares: per table, its columns (name →
// NOT NULL) and primary key, and the indexes.
type schema struct {
	Columns map[string]map[string]bool // table → column → not null
	Primary map[string]string          // table → primary key columns, comma-separated
	Indexes map[string]string          // signature (see indexSignature) → table
}

// indexSignature names an index by what it does, since the indexes behind
// UNIQUE constraints are named by each database its own way: its table and
// columns, whether it is unique and partial, and the name of an index made
// by CREATE INDEX.
func indexSignature(table, name string, columns []string, unique, partial, constraint bool) string {
	sig := table + "(" + strings.Join(columns, ",") + ")"
	if unique {
		sig += " unique"
	}
	if partial {
		sig += " partial"
	}
	if !constraint {
		sig += " " + name
	}
	return sig
}

// goose's own bookkeeping is not part of the schema.
const gooseTable = "goose_db_version"

func describeSQLite(ctx context.Context, t *testing.T, db *sqlx.DB) schema {
	t.Helper()
	s := schema{Columns: map[string]map[string]bool{}, Primary: map[string]string{}, Indexes: map[string]string{}}
	var tables []string
	require.NoError(t, db.SelectContext(ctx, &tables,
		`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?`, gooseTable))
	for _, table := range tables {
		var cols []struct {
			Name    string `db:"name"`
			NotNull bool   `db:"notnull"`
			PK      int    `db:"pk"`
		}
		require.NoError(t, db.SelectContext(ctx, &cols, `SELECT name, "notnull", pk FROM pragma_table_info(?)`, table))
		s.Columns[table] = map[string]bool{}
		pk := map[int]string{}
		for _, c := range cols {
			// SQLite lets a non-INTEGER primary key hold NULL for old
			// compatibility; PostgreSQL's never can. Every key here is
			// set by the code, so a key column counts as NOT NULL.
			s.Columns[table][c.Name] = c.NotNull || c.PK > 0
			if c.PK > 0 {
				pk[c.PK] = c.Name
			}
		}
		s.Primary[table] = joinOrdered(pk)
		var idx []struct {
			Name    string `db:"name"`
			Unique  bool   `db:"unique"`
			Origin  string `db:"origin"`
			Partial bool   `db:"partial"`
		}
		require.NoError(t, db.SelectContext(ctx, &idx, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, table))
		for _, ix := range idx {
			if ix.Origin == "pk" {
				continue // compared as Primary
			}
			var cols []string
			require.NoError(t, db.SelectContext(ctx, &cols, `SELECT COALESCE(name, '<expression>') FROM pragma_index_info(?) ORDER BY seqno`, ix.Name))
			s.Indexes[indexSignature(table, ix.Name, cols, ix.Unique, ix.Partial, ix.Origin == "u")] = table
		}
	}
	return s
}

func describePostgres(ctx context.Context, t *testing.T, db *sqlx.DB) schema {
	t.Helper()
	s := schema{Columns: map[string]map[string]bool{}, Primary: map[string]string{}, Indexes: map[string]string{}}
	var cols []struct {
		Table    string `db:"table_name"`
		Column   string `db:"column_name"`
		Nullable string `db:"is_nullable"`
	}
	require.NoError(t, db.SelectContext(ctx, &cols, `SELECT table_name, column_name, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> $1`, gooseTable))
	for _, c := range cols {
		if s.Columns[c.Table] == nil {
			s.Columns[c.Table] = map[string]bool{}
		}
		s.Columns[c.Table][c.Column] = c.Nullable == "NO"
	}
	var idx []struct {
		Table      string `db:"table_name"`
		Name       string `db:"index_name"`
		Columns    string `db:"columns"`
		Unique     bool   `db:"is_unique"`
		Primary    bool   `db:"is_primary"`
		Partial    bool   `db:"is_partial"`
		Constraint bool   `db:"is_constraint"`
	}
	require.NoError(t, db.SelectContext(ctx, &idx, `
		SELECT t.relname AS table_name, i.relname AS index_name,
		       (SELECT string_agg(COALESCE(a.attname, '<expression>'), ',' ORDER BY k.ord)
		          FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
		          LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum AND k.attnum > 0) AS columns,
		       x.indisunique AS is_unique, x.indisprimary AS is_primary, x.indpred IS NOT NULL AS is_partial,
		       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS is_constraint
		  FROM pg_index x
		  JOIN pg_class i ON i.oid = x.indexrelid
		  JOIN pg_class t ON t.oid = x.indrelid
		  JOIN pg_namespace n ON n.oid = t.relnamespace
		 WHERE n.nspname = current_schema() AND t.relname <> $1`, gooseTable))
	for _, ix := range idx {
		if ix.Primary {
			s.Primary[ix.Table] = ix.Columns
			continue
		}
		s.Indexes[indexSignature(ix.Table, ix.Name, strings.Split(ix.Columns, ","), ix.Unique, ix.Partial, ix.Constraint)] = ix.Table
	}
	for table := range s.Columns {
		if _, ok := s.Primary[table]; !ok {
			s.Primary[table] = ""
		}
	}
	return s
}

func joinOrdered(m map[int]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return strings.Join(out, ",")
}

// differences lists, in words, how b differs from a.
func differences(a, b schema) []string {
	var out []string
	for _, table := range slices.Sorted(maps.Keys(a.Columns)) {
		bc, ok := b.Columns[table]
		if !ok {
			out = append(out, "table "+table+" is missing")
			continue
		}
		for _, col := range slices.Sorted(maps.Keys(a.Columns[table])) {
			notNull, ok := bc[col]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("column %s.%s is missing", table, col))
			case notNull != a.Columns[table][col]:
				out = append(out, fmt.Sprintf("column %s.%s: NOT NULL %v, not %v", table, col, notNull, a.Columns[table][col]))
			}
		}
		for _, col := range slices.Sorted(maps.Keys(bc)) {
			if _, ok := a.Columns[table][col]; !ok {
				out = append(out, fmt.Sprintf("column %s.%s is extra", table, col))
			}
		}
		if a.Primary[table] != b.Primary[table] {
			out = append(out, fmt.Sprintf("table %s: primary key (%s), not (%s)", table, b.Primary[table], a.Primary[table]))
		}
	}
	for _, table := range slices.Sorted(maps.Keys(b.Columns)) {
		if _, ok := a.Columns[table]; !ok {
			out = append(out, "table "+table+" is extra")
		}
	}
	for _, sig := range slices.Sorted(maps.Keys(a.Indexes)) {
		if _, ok := b.Indexes[sig]; !ok {
			out = append(out, "index "+sig+" is missing")
		}
	}
	for _, sig := range slices.Sorted(maps.Keys(b.Indexes)) {
		if _, ok := a.Indexes[sig]; !ok {
			out = append(out, "index "+sig+" is extra")
		}
	}
	return out
}

// The comparison itself finds each kind of difference.
func TestSchemaDifferences(t *testing.T) {
	base := func() schema {
		return schema{
			Columns: map[string]map[string]bool{"accounts": {"id": true, "phone": false}},
			Primary: map[string]string{"accounts": "id"},
			Indexes: map[string]string{"accounts(phone) accounts_phone": "accounts"},
		}
	}
	tests := []struct {
		name   string
		change func(s *schema)
		want   []string
	}{
		{"same", func(*schema) {}, nil},
		{"nullability", func(s *schema) { s.Columns["accounts"]["phone"] = true }, []string{"column accounts.phone: NOT NULL true, not false"}},
		{"missing column", func(s *schema) { delete(s.Columns["accounts"], "phone") }, []string{"column accounts.phone is missing"}},
		{"extra column", func(s *schema) { s.Columns["accounts"]["email"] = true }, []string{"column accounts.email is extra"}},
		{"extra table", func(s *schema) { s.Columns["staff"] = map[string]bool{"id": true} }, []string{"table staff is extra"}},
		{"primary key", func(s *schema) { s.Primary["accounts"] = "phone" }, []string{"table accounts: primary key (phone), not (id)"}},
		{"index", func(s *schema) {
			delete(s.Indexes, "accounts(phone) accounts_phone")
			s.Indexes["accounts(phone) unique accounts_phone"] = "accounts"
		}, []string{"index accounts(phone) accounts_phone is missing", "index accounts(phone) unique accounts_phone is extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			tc.change(&b)
			require.Equal(t, tc.want, differences(base(), b))
		})
	}
}

// After migrating, SQLite and PostgreSQL define the same tables, columns
// (names and nullability), primary keys and indexes.
func TestSchemaParity(t *testing.T) {
	ctx := context.Background()
	lite := describeSQLite(ctx, t, dbtest.SQLite(t))
	require.Contains(t, lite.Columns, "accounts")
	require.True(t, lite.Columns["accounts"]["id"])
	require.Contains(t, lite.Indexes, "push_approvals(account_id) unique partial push_approvals_one_pending")

	pg := dbtest.Postgres(t) // skips without IDLINK_TEST_POSTGRES_URL
	require.Equal(t, migrations.Postgres, migrations.DialectOf(pg))
	require.Empty(t, differences(lite, describePostgres(ctx, t, pg)), "PostgreSQL schema compared with SQLite's")
}
