package pds_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
)

func TestSandboxDataset(t *testing.T) {
	ps := pds.NewSandbox().Patients()
	require.GreaterOrEqual(t, len(ps), 53)
	var test, deceased, restricted int
	for _, p := range ps {
		if p.NHSNumber.IsTestRange() {
			test++
		}
		if p.Deceased {
			deceased++
		}
		if p.Restricted {
			restricted++
			require.Empty(t, p.Postcode)
			require.Empty(t, p.GPODSCode)
			require.Empty(t, p.Phones)
		}
	}
	require.GreaterOrEqual(t, test, 50)
	require.GreaterOrEqual(t, deceased, 3)
	require.GreaterOrEqual(t, restricted, 3)
}

func TestSandboxRead(t *testing.T) {
	ctx := context.Background()
	s := pds.NewSandbox()
	p, err := s.Read(ctx, nhsnumber.MustParse("9000000009"))
	require.NoError(t, err)
	require.Equal(t, []string{"Jane"}, p.Given)
	require.Equal(t, "Smith", p.Family)
	require.Equal(t, "female", p.Gender)
	require.Equal(t, "2010-10-22", p.BirthDate)
	require.Equal(t, "Y12345", p.GPODSCode)
	require.Equal(t, "LS1 6AE", p.Postcode)
	require.Contains(t, p.Phones, "+447700900009")
	require.False(t, p.Restricted)

	r, err := s.Read(ctx, nhsnumber.MustParse("9000000025"))
	require.NoError(t, err)
	require.True(t, r.Restricted)

	_, err = s.Read(ctx, nhsnumber.MustParse("9111231130"))
	require.ErrorIs(t, err, pds.ErrNotFound)

	require.NoError(t, s.MovePractice(p.NHSNumber, "Y90007"))
	moved, err := s.Read(ctx, p.NHSNumber)
	require.NoError(t, err)
	require.Equal(t, "Y90007", moved.GPODSCode)
	require.NotEqual(t, p.Version, moved.Version)
}

func TestSandboxNextGP(t *testing.T) {
	ctx := context.Background()
	s := pds.NewSandbox()
	p, err := s.Search(ctx, pds.Query{Family: "Price", Given: []string{"Megan"}, BirthDate: "1995-02-17"})
	require.NoError(t, err)
	later, err := s.Read(ctx, p.NHSNumber)
	require.NoError(t, err)
	require.NotEqual(t, p.GPODSCode, later.GPODSCode, "the GP changes after the first read")
	require.NotEqual(t, p.Version, later.Version)
	again, err := s.Read(ctx, p.NHSNumber)
	require.NoError(t, err)
	require.Equal(t, later, again)
}

func TestSandboxSearch(t *testing.T) {
	tests := []struct {
		name     string
		q        pds.Query
		want     string
		err      error
		deceased bool
	}{
		{name: "exact", q: pds.Query{Family: "Smith", Given: []string{"Jane"}, BirthDate: "2010-10-22"}, want: "9000000009"},
		{name: "case-insensitive", q: pds.Query{Family: "SMITH", Given: []string{"jane"}, Gender: "female", BirthDate: "2010-10-22", Postcode: "ls16ae"}, want: "9000000009"},
		{name: "restricted matched on hidden postcode", q: pds.Query{Family: "Smythe", BirthDate: "2010-10-22", Postcode: "LS1 6AE"}, want: "9000000025"},
		{name: "wrong postcode", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", Postcode: "M1 1AE"}, err: pds.ErrNotFound},
		{name: "wrong gender", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", Gender: "male"}, err: pds.ErrNotFound},
		{name: "duplicates", q: pds.Query{Family: "Smith", Given: []string{"John"}, BirthDate: "1980-01-01"}, err: pds.ErrTooManyMatches},
		{name: "duplicates narrowed", q: pds.Query{Family: "Smith", Given: []string{"John"}, BirthDate: "1980-01-01", Postcode: "M1 1AE"}},
		{name: "deceased", q: pds.Query{Family: "Crawley", BirthDate: "1932-04-11"}, deceased: true},
		{name: "fuzzy name", q: pds.Query{Family: "Smyth", Given: []string{"Jane"}, BirthDate: "2010-10-22", Postcode: "LS1 6AE", Fuzzy: true}, err: pds.ErrTooManyMatches},
		{name: "fuzzy off", q: pds.Query{Family: "Smithe", Given: []string{"Jane"}, BirthDate: "2010-10-22"}, err: pds.ErrNotFound},
		{name: "fuzzy date", q: pds.Query{Family: "Smith", Given: []string{"Jane"}, BirthDate: "2010-10-22", Fuzzy: true}, want: "9000000009"},
		{name: "confirmed", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", NHSNumber: nhsnumber.MustParse("9000000009")}, want: "9000000009"},
		{name: "not confirmed", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", NHSNumber: nhsnumber.MustParse("9000000033")}, err: pds.ErrNotFound},
		{name: "no family", q: pds.Query{BirthDate: "2010-10-22"}, err: pds.ErrInvalidQuery},
		{name: "no birth date", q: pds.Query{Family: "Smith"}, err: pds.ErrInvalidQuery},
		{name: "bad date", q: pds.Query{Family: "Smith", BirthDate: "2010-13-22"}, err: pds.ErrInvalidQuery},
		{name: "bad gender", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", Gender: "f"}, err: pds.ErrInvalidQuery},
		{name: "bad postcode", q: pds.Query{Family: "Smith", BirthDate: "2010-10-22", Postcode: "LS1;6AE"}, err: pds.ErrInvalidQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pds.NewSandbox().Search(context.Background(), tt.q)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			if tt.want != "" {
				require.Equal(t, tt.want, p.NHSNumber.String())
			}
			require.Equal(t, tt.deceased, p.Deceased)
			require.Positive(t, p.Score)
		})
	}
}

func TestParseSearchset(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  error
	}{
		{"empty", `{"resourceType":"Bundle","type":"searchset","total":0}`, pds.ErrNotFound},
		{"too many", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"multiple-matches","details":{"coding":[{"code":"TOO_MANY_MATCHES"}]}}]}`, pds.ErrTooManyMatches},
		{"two entries", `{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"resource":{}},{"resource":{}}]}`, pds.ErrTooManyMatches},
		{"other outcome", `{"resourceType":"OperationOutcome","issue":[{"code":"x"}]}`, pds.ErrBadResponse},
		{"garbage", `[`, pds.ErrBadResponse},
		{"patient without number", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}`, pds.ErrBadResponse},
		{"bad number", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"9000000000"}}]}`, pds.ErrBadResponse},
		{"one", `{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"search":{"score":0.8},"resource":{"resourceType":"Patient","id":"9000000009","birthDate":"2010-10-22","deceasedDateTime":"2020-01-02","name":[{"use":"old","family":"Old","period":{"end":"2012"}},{"use":"usual","family":"Smith","given":["Jane"]}]}}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pds.ParseSearchset([]byte(tt.body))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "Smith", p.Family)
			require.InDelta(t, 0.8, p.Score, 1e-9)
			require.True(t, p.Deceased)
			require.Equal(t, 2020, p.DeceasedAt.Year())
		})
	}
}

func FuzzParsePatient(f *testing.F) {
	for _, p := range pds.NewSandbox().Patients()[:5] {
		b, err := p.MarshalFHIR()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Patient","id":"9000000009","deceasedDateTime":"2020"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pds.ParsePatient(data)
		if err != nil {
			require.ErrorIs(t, err, pds.ErrBadResponse)
			return
		}
		b, err := p.MarshalFHIR()
		require.NoError(t, err)
		again, err := pds.ParsePatient(b)
		require.NoError(t, err)
		require.True(t, p.DeceasedAt.Equal(again.DeceasedAt))
		p.DeceasedAt, again.DeceasedAt = again.DeceasedAt, p.DeceasedAt
		require.Equal(t, p, again)
	})
}

func FuzzParseSearchset(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"search":{"score":1},"resource":{"resourceType":"Patient","id":"9000000009"}}]}`))
	f.Add([]byte(`{"resourceType":"OperationOutcome","issue":[{"details":{"coding":[{"code":"TOO_MANY_MATCHES"}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pds.ParseSearchset(data)
		if err == nil {
			require.False(t, p.NHSNumber.IsZero())
		}
	})
}
