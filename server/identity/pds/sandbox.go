package pds

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/idlink/idlink/server/identity/nhsnumber"
)

//go:generate go run ./testdata/gen -o sandbox_patients.json

// sandboxDataset is the shipped sandbox dataset: a FHIR Bundle (type
// collection) of Patient resources. It is read, never written.
//
//go:embed sandbox_patients.json
var sandboxDataset []byte

// Extensions the sandbox dataset uses on Patient resources. Real PDS never
// sends them; ParsePatient ignores them.
const (
	// ExtHiddenPostcode carries the postcode of a restricted record: PDS
	// matches searches on it but withholds it, and so does the sandbox.
	ExtHiddenPostcode = "https://idlink.example/fhir/StructureDefinition/sandbox-hidden-postcode"
	// ExtNextGP carries the ODS code of the practice a person moves to
	// after the record has first been returned (by Read or Search): from the
	// second time on, the sandbox returns the new GP and a version one
	// higher. It simulates a GP change between two logins.
	ExtNextGP = "https://idlink.example/fhir/StructureDefinition/sandbox-next-gp"
)

// Sandbox is a Directory over the shipped dataset, held in memory. Every
// Sandbox starts from the same records; changes (MovePractice, MarkDeceased,
// the ExtNextGP moves) stay in that Sandbox. It is safe for concurrent use.
//
// Search follows PDS application-restricted search: family name and birth
// date are required; names compare without regard to case (every given name
// asked for must be one of the person's); postcodes compare without spaces
// or case, against the hidden postcode for restricted records; exactly one
// match is returned, more give ErrTooManyMatches, none ErrNotFound. Deceased
// records match like any other (Patient.Deceased is set). Fuzzy search also
// accepts names one letter apart or differing in punctuation, and a birth
// date with day and month swapped; such matches score 0.9, exact ones 1.
type Sandbox struct {
	mu      sync.Mutex
	records map[nhsnumber.Number]*sandboxRecord
	order   []nhsnumber.Number
}

type sandboxRecord struct {
	p              Patient
	hiddenPostcode string
	nextGP         string
	served         bool
}

var _ Directory = (*Sandbox)(nil)

// NewSandbox returns a Sandbox holding the shipped dataset. It panics if the
// embedded dataset is malformed, which the package's tests rule out.
func NewSandbox() *Sandbox {
	s, err := newSandbox(sandboxDataset)
	if err != nil {
		panic(fmt.Sprintf("pds: embedded sandbox dataset: %v", err))
	}
	return s
}

func newSandbox(data []byte) (*Sandbox, error) {
	var b fhirBundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("decode sandbox bundle: %w", err)
	}
	s := &Sandbox{records: make(map[nhsnumber.Number]*sandboxRecord, len(b.Entry))}
	for i, e := range b.Entry {
		var fp fhirPatient
		if err := json.Unmarshal(e.Resource, &fp); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		p, err := fp.toPatient()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		rec := &sandboxRecord{p: p}
		for _, x := range fp.Extension {
			switch x.URL {
			case ExtHiddenPostcode:
				rec.hiddenPostcode = x.ValueString
			case ExtNextGP:
				rec.nextGP = x.ValueString
			}
		}
		if _, dup := s.records[p.NHSNumber]; dup {
			return nil, fmt.Errorf("entry %d: duplicate NHS number %s", i, p.NHSNumber)
		}
		s.records[p.NHSNumber] = rec
		s.order = append(s.order, p.NHSNumber)
	}
	return s, nil
}

// Read returns the record of nhs, or ErrNotFound.
func (s *Sandbox) Read(ctx context.Context, nhs nhsnumber.Number) (Patient, error) {
	if err := ctx.Err(); err != nil {
		return Patient{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[nhs]
	if !ok {
		return Patient{}, fmt.Errorf("read patient: %w", ErrNotFound)
	}
	return rec.serve(), nil
}

// Search returns the one record matching q (see Sandbox for the rules).
func (s *Sandbox) Search(ctx context.Context, q Query) (Patient, error) {
	if err := q.Validate(); err != nil {
		return Patient{}, err
	}
	if err := ctx.Err(); err != nil {
		return Patient{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		found *sandboxRecord
		score float64
		n     int
	)
	for _, nhs := range s.order {
		rec := s.records[nhs]
		if sc, ok := rec.matches(q); ok {
			n++
			found, score = rec, sc
		}
	}
	switch {
	case n == 0:
		return Patient{}, fmt.Errorf("search: %w", ErrNotFound)
	case n > 1:
		return Patient{}, fmt.Errorf("search: %w", ErrTooManyMatches)
	}
	if _, err := q.confirm(found.p); err != nil {
		return Patient{}, err
	}
	p := found.serve()
	p.Score = score
	return p, nil
}

// Patients returns every record as it stands, in dataset order (without
// counting as a read). Use it to seed other sandboxes, such as the GP
// linkage records of package gp.
func (s *Sandbox) Patients() []Patient {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Patient, 0, len(s.order))
	for _, nhs := range s.order {
		out = append(out, clonePatient(s.records[nhs].p))
	}
	return out
}

// MovePractice registers nhs with the GP practice odsCode (a new version of
// the record), as when a person changes GP. Unknown numbers give ErrNotFound.
func (s *Sandbox) MovePractice(nhs nhsnumber.Number, odsCode string) error {
	return s.update(nhs, func(p *Patient) { p.GPODSCode = odsCode })
}

// MarkDeceased records the death of nhs at the given time (a new version of
// the record). Unknown numbers give ErrNotFound.
func (s *Sandbox) MarkDeceased(nhs nhsnumber.Number, at time.Time) error {
	return s.update(nhs, func(p *Patient) { p.Deceased, p.DeceasedAt = true, at.UTC() })
}

func (s *Sandbox) update(nhs nhsnumber.Number, fn func(*Patient)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.records[nhs]
	if !ok {
		return fmt.Errorf("update sandbox patient: %w", ErrNotFound)
	}
	fn(&rec.p)
	rec.p.Version = bumpVersion(rec.p.Version)
	rec.nextGP = ""
	return nil
}

// serve returns the record, applying a pending ExtNextGP move from the
// second time on. Called with the Sandbox's lock held.
func (r *sandboxRecord) serve() Patient {
	if r.served && r.nextGP != "" {
		r.p.GPODSCode = r.nextGP
		r.p.Version = bumpVersion(r.p.Version)
		r.nextGP = ""
	}
	r.served = true
	return clonePatient(r.p)
}

func (r *sandboxRecord) matches(q Query) (float64, bool) {
	p := &r.p
	exact := true
	m := func(ok, fuzzy bool) bool {
		if ok {
			return true
		}
		if q.Fuzzy && fuzzy {
			exact = false
			return true
		}
		return false
	}
	if !m(strings.EqualFold(p.Family, q.Family), similar(p.Family, q.Family)) {
		return 0, false
	}
	for _, g := range q.Given {
		ok, fz := false, false
		for _, pg := range p.Given {
			ok = ok || strings.EqualFold(pg, g)
			fz = fz || similar(pg, g)
		}
		if !m(ok, fz) {
			return 0, false
		}
	}
	if q.Gender != "" && q.Gender != p.Gender {
		return 0, false
	}
	if !m(p.BirthDate == q.BirthDate, swapDayMonth(q.BirthDate) == p.BirthDate) {
		return 0, false
	}
	if q.Postcode != "" {
		pc := p.Postcode
		if pc == "" {
			pc = r.hiddenPostcode
		}
		if pc == "" || normalizePostcode(pc) != normalizePostcode(q.Postcode) {
			return 0, false
		}
	}
	if exact {
		return 1, true
	}
	return 0.9, true
}

// similar reports whether two names are alike for a fuzzy search: equal
// ignoring case and everything but letters, or one edit apart when at least
// four letters long.
func similar(a, b string) bool {
	x, y := letters(a), letters(b)
	if x == y {
		return true
	}
	return len(x) >= 4 && len(y) >= 4 && editDistanceAtMostOne(x, y)
}

func letters(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func editDistanceAtMostOne(a, b string) bool {
	x, y := []rune(a), []rune(b)
	if len(x) < len(y) {
		x, y = y, x
	}
	if len(x)-len(y) > 1 {
		return false
	}
	i := 0
	for i < len(y) && x[i] == y[i] {
		i++
	}
	if len(x) == len(y) {
		return string(x[i+1:]) == string(y[i+1:])
	}
	return string(x[i+1:]) == string(y[i:])
}

// swapDayMonth returns YYYY-DD-MM for YYYY-MM-DD when that is a date.
func swapDayMonth(d string) string {
	if !isFullDate(d) {
		return ""
	}
	s := d[:5] + d[8:10] + "-" + d[5:7]
	if !isFullDate(s) {
		return ""
	}
	return s
}

func bumpVersion(v string) string {
	n, err := strconv.Atoi(v)
	if err != nil {
		n = 1
	}
	return strconv.Itoa(n + 1)
}

func clonePatient(p Patient) Patient {
	p.Given = slices.Clone(p.Given)
	p.Phones = slices.Clone(p.Phones)
	p.Emails = slices.Clone(p.Emails)
	return p
}
