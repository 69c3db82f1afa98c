package gp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/identity/nhsnumber"
)

// Sandbox is a System keeping linkages in the gp_linkages table. Linkage
// keys are stored as issued (not hashed or encrypted): like a GP system, the
// sandbox shows them to the person again (LinkageFor returns the existing
// key), so it must be able to read them; the table is sandbox data for
// development and tests only. It is safe for concurrent use.
type Sandbox struct {
	db  *sqlx.DB
	now func() time.Time
}

var _ System = (*Sandbox)(nil)

// NewSandbox returns a Sandbox over a migrated database; now is the clock
// (time.Now when nil).
func NewSandbox(db *sqlx.DB, now func() time.Time) *Sandbox {
	if now == nil {
		now = time.Now
	}
	return &Sandbox{db: db, now: now}
}

// SeedPatient is a patient to give a linkage at their GP practice, for
// example from pds.Sandbox.Patients (NHSNumber and GPODSCode).
type SeedPatient struct {
	NHSNumber nhsnumber.Number
	ODSCode   string
}

// Seed gives every patient with a practice a linkage there, keeping the ones
// that exist (so it is idempotent), and returns how many patients it
// covered. Patients without an ODS code are skipped.
func (s *Sandbox) Seed(ctx context.Context, patients []SeedPatient) (int, error) {
	n := 0
	for _, p := range patients {
		if p.ODSCode == "" || p.NHSNumber.IsZero() {
			continue
		}
		if _, err := s.LinkageFor(ctx, p.NHSNumber, p.ODSCode); err != nil {
			return n, fmt.Errorf("seed GP linkage for %s: %w", p.NHSNumber, err)
		}
		n++
	}
	return n, nil
}

// Verify returns the NHS number of the linkage with d's practice and account
// id, when d's linkage key matches it (compared in constant time).
func (s *Sandbox) Verify(ctx context.Context, d Details) (nhsnumber.Number, error) {
	d, err := d.Normalize()
	if err != nil {
		return nhsnumber.Number{}, err
	}
	var row struct {
		NHSNumber  string `db:"nhs_number"`
		LinkageKey string `db:"linkage_key"`
	}
	err = s.db.GetContext(ctx, &row, s.db.Rebind(
		`SELECT nhs_number, linkage_key FROM gp_linkages WHERE ods_code = ? AND account_id = ?`), d.ODSCode, d.AccountID)
	switch {
	case migrations.IsNoRows(err):
		// Compare anyway, so that an unknown account takes as long.
		subtle.ConstantTimeCompare([]byte(d.LinkageKey), []byte("2222222222222"))
		return nhsnumber.Number{}, fmt.Errorf("verify GP details: %w", ErrNoMatch)
	case err != nil:
		return nhsnumber.Number{}, fmt.Errorf("verify GP details: %w: %w", ErrUnavailable, err)
	}
	if subtle.ConstantTimeCompare([]byte(d.LinkageKey), []byte(row.LinkageKey)) != 1 {
		return nhsnumber.Number{}, fmt.Errorf("verify GP details: %w", ErrNoMatch)
	}
	nhs, err := nhsnumber.Parse(row.NHSNumber)
	if err != nil {
		return nhsnumber.Number{}, fmt.Errorf("verify GP details: stored NHS number: %w: %w", ErrUnavailable, err)
	}
	return nhs, nil
}

// LinkageFor returns the linkage of nhs at odsCode, creating it when there
// is none. Creation is one INSERT … ON CONFLICT DO NOTHING on the
// (nhs_number, ods_code) key followed by a read, so racing callers all get
// the one row that won.
func (s *Sandbox) LinkageFor(ctx context.Context, nhs nhsnumber.Number, odsCode string) (Linkage, error) {
	if nhs.IsZero() {
		return Linkage{}, fmt.Errorf("%w: NHS number is required", ErrInvalid)
	}
	ods, err := NormalizeODSCode(odsCode)
	if err != nil {
		return Linkage{}, err
	}
	if l, err := s.get(ctx, nhs, ods); err == nil || !migrations.IsNoRows(err) {
		return l, wrapDB(err)
	}
	for range 5 {
		key, err := randomString(LinkageKeyAlphabet, LinkageKeyLength)
		if err != nil {
			return Linkage{}, err
		}
		account, err := randomString("0123456789", AccountIDLength)
		if err != nil {
			return Linkage{}, err
		}
		_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO gp_linkages
			(nhs_number, ods_code, account_id, linkage_key, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (nhs_number, ods_code) DO NOTHING`),
			nhs.String(), ods, account, key, s.now().UTC())
		if migrations.IsUniqueViolation(err) {
			continue // the account id is taken at this practice: draw again
		}
		if err != nil {
			return Linkage{}, wrapDB(err)
		}
		l, err := s.get(ctx, nhs, ods)
		return l, wrapDB(err)
	}
	return Linkage{}, fmt.Errorf("%w: no free account id at %s", ErrUnavailable, ods)
}

func (s *Sandbox) get(ctx context.Context, nhs nhsnumber.Number, ods string) (Linkage, error) {
	var row struct {
		AccountID  string    `db:"account_id"`
		LinkageKey string    `db:"linkage_key"`
		CreatedAt  time.Time `db:"created_at"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(
		`SELECT account_id, linkage_key, created_at FROM gp_linkages WHERE nhs_number = ? AND ods_code = ?`), nhs.String(), ods)
	if err != nil {
		return Linkage{}, err
	}
	return Linkage{NHSNumber: nhs, ODSCode: ods, AccountID: row.AccountID, LinkageKey: row.LinkageKey, CreatedAt: row.CreatedAt.UTC()}, nil
}

func wrapDB(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("GP linkage: %w: %w", ErrUnavailable, err)
}

// randomString draws n characters uniformly from alphabet with crypto/rand.
func randomString(alphabet string, n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b), nil
}
