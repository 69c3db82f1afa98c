package pds_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/identity/pds/pdsfake"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func setup(t *testing.T, mod func(*pds.Config)) (*pds.Client, *pdsfake.Server, *clock) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		testKey, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
	})
	clk := &clock{t: time.Now()}
	fake := pdsfake.New(pdsfake.Config{ClientID: "api-key", PublicKey: &testKey.PublicKey, Now: clk.Now})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := pds.Config{
		BaseURL: srv.URL, TokenURL: srv.URL + pdsfake.TokenPath, ClientID: "api-key", Key: testKey, KID: "test-1",
		Timeout: 5 * time.Second, MaxRetries: 3, RetryBase: time.Millisecond, MaxRetryWait: 50 * time.Millisecond, Now: clk.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := pds.NewClient(cfg)
	require.NoError(t, err)
	return c, fake, clk
}

func TestClientRead(t *testing.T) {
	ctx := context.Background()
	c, fake, _ := setup(t, nil)
	tests := []struct {
		nhs        string
		err        error
		restricted bool
		deceased   bool
	}{
		{nhs: "9000000009"},
		{nhs: "9000000025", restricted: true},
		{nhs: "9000000033"},
		{nhs: "9111231130", err: pds.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.nhs, func(t *testing.T) {
			p, err := c.Read(ctx, nhsnumber.MustParse(tt.nhs))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			want, err := fake.Sandbox().Read(ctx, p.NHSNumber)
			require.NoError(t, err)
			require.Equal(t, want, p)
			require.Equal(t, tt.restricted, p.Restricted)
		})
	}
	_, err := c.Read(ctx, nhsnumber.Number{})
	require.ErrorIs(t, err, pds.ErrInvalidNHSNumber)
}

func TestClientSearch(t *testing.T) {
	c, _, _ := setup(t, nil)
	tests := []struct {
		name     string
		q        pds.Query
		want     string
		err      error
		deceased bool
	}{
		{name: "unique", q: pds.Query{Family: "Smith", Given: []string{"Jane"}, Gender: "female", BirthDate: "2010-10-22", Postcode: "LS1 6AE"}, want: "9000000009"},
		{name: "too many", q: pds.Query{Family: "Smith", Given: []string{"John"}, BirthDate: "1980-01-01"}, err: pds.ErrTooManyMatches},
		{name: "not found", q: pds.Query{Family: "Nobody", BirthDate: "1980-01-01"}, err: pds.ErrNotFound},
		{name: "restricted", q: pds.Query{Family: "Smythe", BirthDate: "2010-10-22"}, want: "9000000025"},
		{name: "deceased", q: pds.Query{Family: "Crawley", BirthDate: "1932-04-11"}, deceased: true},
		{name: "not confirmed", q: pds.Query{Family: "Smith", Given: []string{"Jane"}, BirthDate: "2010-10-22", NHSNumber: nhsnumber.MustParse("9000000033")}, err: pds.ErrNotFound},
		{name: "invalid", q: pds.Query{Family: "Smith"}, err: pds.ErrInvalidQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Search(context.Background(), tt.q)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.NotErrorIs(t, err, pds.ErrUnavailable)
				return
			}
			require.NoError(t, err)
			if tt.want != "" {
				require.Equal(t, tt.want, p.NHSNumber.String())
			}
			require.Equal(t, tt.deceased, p.Deceased)
			require.Equal(t, 1.0, p.Score)
		})
	}
}

func TestClientRetries(t *testing.T) {
	jane := nhsnumber.MustParse("9000000009")
	tests := []struct {
		name       string
		fails      int
		status     int
		retryAfter string
		ok         bool
	}{
		{"429 then success", 2, 429, "0", true},
		{"503 then success", 3, 503, "", true},
		{"gives up", 4, 503, "", false},
		{"retry-after too long", 1, 429, "120", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake, _ := setup(t, nil)
			fake.FailNext(tt.fails, tt.status, tt.retryAfter)
			_, err := c.Read(context.Background(), jane)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, pds.ErrUnavailable)
		})
	}
}

func TestClientTimeout(t *testing.T) {
	c, fake, _ := setup(t, func(cfg *pds.Config) { cfg.Timeout = 50 * time.Millisecond })
	fake.SetDelay(5 * time.Second)
	_, err := c.Read(context.Background(), nhsnumber.MustParse("9000000009"))
	require.ErrorIs(t, err, pds.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Search(ctx, pds.Query{Family: "Smith", BirthDate: "2010-10-22"})
	require.ErrorIs(t, err, pds.ErrUnavailable)
}

func TestClientTokenCachedAndRefreshed(t *testing.T) {
	ctx := context.Background()
	c, fake, clk := setup(t, nil)
	jane := nhsnumber.MustParse("9000000009")
	for range 3 {
		_, err := c.Read(ctx, jane)
		require.NoError(t, err)
	}
	require.Equal(t, 1, fake.TokensIssued())
	clk.Add(10 * time.Minute)
	_, err := c.Read(ctx, jane)
	require.NoError(t, err)
	require.Equal(t, 2, fake.TokensIssued())
}

func TestClientTokenRefused(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	c, _, _ := setup(t, func(cfg *pds.Config) { cfg.Key = other })
	_, err = c.Read(context.Background(), nhsnumber.MustParse("9000000009"))
	require.ErrorIs(t, err, pds.ErrUnavailable)
}

func TestClientRequestIDs(t *testing.T) {
	c, fake, _ := setup(t, nil)
	fake.FailNext(1, 503, "")
	for range 3 {
		_, err := c.Read(context.Background(), nhsnumber.MustParse("9000000009"))
		require.NoError(t, err)
	}
	ids := fake.RequestIDs()
	require.Len(t, ids, 4)
	seen := map[string]bool{}
	for _, id := range ids {
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)
		require.False(t, seen[id], "unique per call")
		seen[id] = true
	}
}

func TestNewClientConfig(t *testing.T) {
	_, err := pds.NewClient(pds.Config{BaseURL: "ftp://x", TokenURL: "https://t", ClientID: "a", Key: &rsa.PrivateKey{}, KID: "k"})
	require.ErrorIs(t, err, pds.ErrBadConfig)
	_, err = pds.NewClient(pds.Config{BaseURL: "https://x", TokenURL: "https://t"})
	require.ErrorIs(t, err, pds.ErrBadConfig)
}
