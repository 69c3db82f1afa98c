package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/media/mediatest"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/trust"
)

var ctx = context.Background()
var actor = audit.Actor{IP: "192.0.2.1", RequestID: "test"}

// accounts is a stand-in for the account capability.
type accounts struct {
	mu      sync.Mutex
	byID    map[string]*account.Account
	alerts  []string
	blocked []string
}

func newAccounts() *accounts { return &accounts{byID: map[string]*account.Account{}} }

func (a *accounts) add(id, phone string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byID[id] = &account.Account{ID: id, Email: id + "@example.org", Phone: &phone, ProofingLevel: "P0", Status: account.StatusActive}
}

func (a *accounts) Account(_ context.Context, id string) (account.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acct, ok := a.byID[id]
	if !ok {
		return account.Account{}, account.ErrNotFound
	}
	return *acct, nil
}

func (a *accounts) RaiseLevel(_ context.Context, _ audit.Actor, id string, l trust.Level) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acct := a.byID[id]; l > acct.Level() {
		acct.ProofingLevel = l.String()
	}
	return nil
}

func (a *accounts) Block(_ context.Context, _ audit.Actor, id, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byID[id].Status = account.StatusBlocked
	a.blocked = append(a.blocked, id)
	return nil
}

func (a *accounts) SendSecurityAlert(_ context.Context, _ audit.Actor, id string, kind notify.Kind, text string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.alerts = append(a.alerts, id+":"+string(kind)+":"+text)
	return nil
}

func (a *accounts) level(id string) trust.Level {
	acct, _ := a.Account(ctx, id)
	return acct.Level()
}

// grants records revocations.
type grants struct{ revoked []string }

func (g *grants) RevokeAccount(_ context.Context, id string) (int64, error) {
	g.revoked = append(g.revoked, id)
	return 1, nil
}

// flakyPDS fails with ErrUnavailable while down is set.
type flakyPDS struct {
	*pds.Sandbox
	down atomic.Bool
}

func (f *flakyPDS) Read(ctx context.Context, n nhsnumber.Number) (pds.Patient, error) {
	if f.down.Load() {
		return pds.Patient{}, pds.ErrUnavailable
	}
	return f.Sandbox.Read(ctx, n)
}

func (f *flakyPDS) Search(ctx context.Context, q pds.Query) (pds.Patient, error) {
	if f.down.Load() {
		return pds.Patient{}, pds.ErrUnavailable
	}
	return f.Sandbox.Search(ctx, q)
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Inc(o string) { c.mu.Lock(); c.n[o]++; c.mu.Unlock() }

type env struct {
	svc      *identity.Service
	accounts *accounts
	grants   *grants
	pds      *flakyPDS
	gp       *gp.Sandbox
	checks   *counter
	db       *sqlx.DB
	media    *media.Store
}

func newEnv(t *testing.T, db *sqlx.DB) *env {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store, err := media.New(media.Config{Dir: t.TempDir(), Key: key})
	require.NoError(t, err)
	e := &env{accounts: newAccounts(), grants: &grants{}, pds: &flakyPDS{Sandbox: pds.NewSandbox()}, gp: gp.NewSandbox(db, nil),
		checks: &counter{n: map[string]int{}}, db: db, media: store}
	var seed []gp.SeedPatient
	for _, p := range e.pds.Patients() {
		if p.GPODSCode != "" {
			seed = append(seed, gp.SeedPatient{NHSNumber: p.NHSNumber, ODSCode: p.GPODSCode})
		}
	}
	_, err = e.gp.Seed(ctx, seed)
	require.NoError(t, err)
	e.svc, err = identity.New(identity.Config{MediaRetention: time.Hour}, identity.Deps{DB: db, Accounts: e.accounts, Grants: e.grants,
		PDS: e.pds, GP: e.gp, Media: store, Limiter: ratelimit.New(db, nil), Audit: audit.New(db, nil), Checks: e.checks})
	require.NoError(t, err)
	return e
}

var jane = identity.Details{BirthDate: "2010-10-22", FamilyName: "Smith", GivenName: "Jane", Postcode: "ls16ae"}

func TestMatchPDS(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		cases := []struct {
			name string
			d    identity.Details
			want error
		}{
			{"no match", identity.Details{BirthDate: "1999-01-01", FamilyName: "Nobody", GivenName: "Here", Postcode: "LS1 6AE"}, identity.ErrNoMatch},
			{"two people share the name and birthday", identity.Details{BirthDate: "1980-01-01", FamilyName: "Smith", GivenName: "John"}, identity.ErrTooManyMatches},
			{"deceased", identity.Details{BirthDate: "1932-04-11", FamilyName: "Crawley", GivenName: "Edith", Postcode: "LS1 6AE"}, identity.ErrDeceased},
			{"restricted", identity.Details{BirthDate: "2010-10-22", FamilyName: "Smythe", GivenName: "Janet"}, identity.ErrRestricted},
			{"bad date", identity.Details{BirthDate: "22/10/2010", FamilyName: "Smith", GivenName: "Jane"}, identity.ErrInvalid},
			{"bad NHS number", identity.Details{BirthDate: "2010-10-22", FamilyName: "Smith", GivenName: "Jane", NHSNumber: "9000000000"}, identity.ErrInvalid},
			{"NHS number of someone else", identity.Details{BirthDate: "2010-10-22", FamilyName: "Smith", GivenName: "Jane", Postcode: "LS1 6AE", NHSNumber: "9990000018"}, identity.ErrNoMatch},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := "acct-" + string(rune('a'+i))
				e.accounts.add(id, "+447700900009")
				_, err := e.svc.MatchPDS(ctx, actor, id, tc.d)
				require.ErrorIs(t, err, tc.want)
				require.Equal(t, trust.P0, e.accounts.level(id))
				_, ok, err := e.svc.Record(ctx, id)
				require.NoError(t, err)
				require.False(t, ok, "nothing is stored without a match")
			})
		}

		e.accounts.add("jane", "+447700900009")
		r, err := e.svc.MatchPDS(ctx, actor, "jane", jane)
		require.NoError(t, err)
		require.Equal(t, trust.P5, e.accounts.level("jane"))
		require.Equal(t, "9000000009", r.NHSNumber)
		require.Equal(t, "Y12345", r.GPODSCode)
		require.Equal(t, "Jane", r.GivenName)
		require.True(t, r.PhonePDSMatched, "the login phone is one of PDS's numbers")

		// One account per NHS number.
		e.accounts.add("impostor", "+447700900999")
		_, err = e.svc.MatchPDS(ctx, actor, "impostor", jane)
		require.ErrorIs(t, err, identity.ErrNHSNumberInUse)
		require.Equal(t, trust.P0, e.accounts.level("impostor"))
	})
}

func TestMatchAttemptsPerDayUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		e.accounts.add("acct", "+447700900001")
		var searched, refused atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.svc.MatchPDS(ctx, actor, "acct", identity.Details{BirthDate: "1999-01-01", FamilyName: "Nobody", GivenName: "X"})
				switch {
				case errors.Is(err, identity.ErrAttempts):
					refused.Add(1)
				case errors.Is(err, identity.ErrNoMatch):
					searched.Add(1)
				default:
					t.Errorf("unexpected %v", err)
				}
			}()
		}
		wg.Wait()
		require.EqualValues(t, identity.MatchAttemptsPerDay, searched.Load())
		require.EqualValues(t, 20-identity.MatchAttemptsPerDay, refused.Load())
		var audited int
		require.NoError(t, db.Get(&audited, db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE account_id = ? AND type = ?`), "acct", "identity.pds_match"))
		require.Equal(t, identity.MatchAttemptsPerDay, audited, "every attempt is audited")
	})
}

func TestVerifyGP(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		link, err := e.gp.LinkageFor(ctx, nhsnumber.MustParse("9990000018"), "Y90001")
		require.NoError(t, err)
		good := gp.Details{LinkageKey: link.LinkageKey, ODSCode: link.ODSCode, AccountID: link.AccountID}

		e.accounts.add("olivia", "+447700900100")
		wrong := good
		wrong.LinkageKey = "2222222222222"
		_, err = e.svc.VerifyGP(ctx, actor, "olivia", wrong)
		require.ErrorIs(t, err, identity.ErrNoMatch)
		_, err = e.svc.VerifyGP(ctx, actor, "olivia", gp.Details{LinkageKey: "x", ODSCode: "Y90001", AccountID: "1"})
		require.ErrorIs(t, err, identity.ErrInvalid)

		r, err := e.svc.VerifyGP(ctx, actor, "olivia", good)
		require.NoError(t, err)
		require.Equal(t, trust.P9, e.accounts.level("olivia"))
		require.Equal(t, identity.RouteGP, r.Route)
		require.True(t, r.HasGPCredentials())
		require.Equal(t, link.LinkageKey, r.GPLinkageKey)

		// After a P5 match, GP details must be the same person's.
		e.accounts.add("jane", "+447700900009")
		_, err = e.svc.MatchPDS(ctx, actor, "jane", jane)
		require.NoError(t, err)
		link2, err := e.gp.LinkageFor(ctx, nhsnumber.MustParse("9990000026"), "Y90002")
		require.NoError(t, err)
		_, err = e.svc.VerifyGP(ctx, actor, "jane", gp.Details{LinkageKey: link2.LinkageKey, ODSCode: link2.ODSCode, AccountID: link2.AccountID})
		require.ErrorIs(t, err, identity.ErrMismatch)
		require.Equal(t, trust.P5, e.accounts.level("jane"))
	})
}

func TestPhotoCheckReview(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		e.accounts.add("person", "+447700900130")
		_, err := e.svc.SubmitPhotoCheck(ctx, actor, "person", identity.Evidence{DocumentType: "library_card", Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(5))})
		require.ErrorIs(t, err, identity.ErrInvalid)
		_, err = e.svc.SubmitPhotoCheck(ctx, actor, "person", identity.Evidence{DocumentType: identity.DocPassport, Photo: bytes.NewReader(mp4Video(5)), Video: bytes.NewReader(mp4Video(5))})
		require.ErrorIs(t, err, media.ErrUnsupportedType)
		_, err = e.svc.SubmitPhotoCheck(ctx, actor, "person", identity.Evidence{DocumentType: identity.DocPassport, Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(120))})
		require.ErrorIs(t, err, media.ErrTooLong)

		c, err := e.svc.SubmitPhotoCheck(ctx, actor, "person", identity.Evidence{DocumentType: identity.DocPassport, Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(5))})
		require.NoError(t, err)
		_, err = e.svc.SubmitPhotoCheck(ctx, actor, "person", identity.Evidence{DocumentType: identity.DocPassport, Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(5))})
		require.ErrorIs(t, err, identity.ErrCheckOpen)

		queue, err := e.svc.Queue(ctx, 50)
		require.NoError(t, err)
		require.Len(t, queue, 1)

		alice, bob := identity.Staff{AccountID: "alice", Roles: []string{identity.RoleIDChecker}}, identity.Staff{AccountID: "bob", Roles: []string{identity.RoleIDChecker}}
		_, err = e.svc.Claim(ctx, actor, identity.Staff{AccountID: "eve"}, c.ID)
		require.ErrorIs(t, err, identity.ErrForbidden, "no role, no review")

		// Two reviewers race for the check: exactly one gets it.
		var wins atomic.Int64
		var wg sync.WaitGroup
		for _, s := range []identity.Staff{alice, bob, alice, bob, alice, bob} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got, err := e.svc.Claim(ctx, actor, s, c.ID); err == nil && *got.ClaimedBy == s.AccountID {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		got, err := e.svc.GetCheck(ctx, c.ID)
		require.NoError(t, err)
		reviewer, other := alice, bob
		if *got.ClaimedBy == bob.AccountID {
			reviewer, other = bob, alice
		}
		_, err = e.svc.Claim(ctx, actor, other, c.ID)
		require.ErrorIs(t, err, identity.ErrClaimed)
		_, _, err = e.svc.Evidence(ctx, actor, other, c.ID, media.KindIDPhoto)
		require.ErrorIs(t, err, identity.ErrForbidden, "only the reviewer sees the evidence")
		photo, info, err := e.svc.Evidence(ctx, actor, reviewer, c.ID, media.KindIDPhoto)
		require.NoError(t, err)
		require.Equal(t, "image/jpeg", info.ContentType)
		require.Equal(t, jpegPhoto(t)[:4], photo[:4])

		found, err := e.svc.SearchPDS(ctx, actor, reviewer, c.ID, identity.Details{BirthDate: "1970-07-07", FamilyName: "Taylor", GivenName: "Olivia", Postcode: "LS1 6AE"})
		require.NoError(t, err)
		require.Equal(t, "9990000344", found.NHSNumber.String())

		_, err = e.svc.Decide(ctx, actor, other, c.ID, identity.Decision{IDValid: true, FaceMatch: true, Approve: true, NHSNumber: "9990000344"})
		require.ErrorIs(t, err, identity.ErrClaimed, "two reviewers cannot decide the same case")
		_, err = e.svc.Decide(ctx, actor, reviewer, c.ID, identity.Decision{IDValid: true, FaceMatch: false, Approve: true, NHSNumber: "9990000344"})
		require.ErrorIs(t, err, identity.ErrInvalid, "no approval without a matching face")
		_, err = e.svc.Decide(ctx, actor, reviewer, c.ID, identity.Decision{IDValid: true, FaceMatch: true, Approve: true, NHSNumber: "9990000441"})
		require.ErrorIs(t, err, identity.ErrDeceased)

		done, err := e.svc.Decide(ctx, actor, reviewer, c.ID, identity.Decision{IDValid: true, FaceMatch: true, Approve: true, NHSNumber: "9990000344"})
		require.NoError(t, err)
		require.Equal(t, identity.CheckApproved, done.Status)
		require.Equal(t, trust.P9, e.accounts.level("person"))
		r, ok, err := e.svc.Record(ctx, "person")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, identity.RoutePhotoID, r.Route)
		require.True(t, r.HasGPCredentials(), "a linkage key was looked up or created at the practice")
		require.Equal(t, "Y90003", r.GPLinkageODS)
		_, err = e.svc.Decide(ctx, actor, reviewer, c.ID, identity.Decision{Reason: "again"})
		require.ErrorIs(t, err, identity.ErrClaimed)

		// A rejection tells the person why.
		e.accounts.add("other", "+447700900131")
		c2, err := e.svc.SubmitPhotoCheck(ctx, actor, "other", identity.Evidence{DocumentType: identity.DocUKDrivingLicence, Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(5))})
		require.NoError(t, err)
		_, err = e.svc.Claim(ctx, actor, alice, c2.ID)
		require.NoError(t, err)
		_, err = e.svc.Decide(ctx, actor, alice, c2.ID, identity.Decision{IDValid: false})
		require.ErrorIs(t, err, identity.ErrInvalid, "a reason is required")
		_, err = e.svc.Decide(ctx, actor, alice, c2.ID, identity.Decision{IDValid: false, Reason: "The photo of your licence is blurred."})
		require.NoError(t, err)
		require.Contains(t, e.accounts.alerts[len(e.accounts.alerts)-1], "blurred")
		require.Equal(t, trust.P0, e.accounts.level("other"))

		// Evidence goes after the retention period.
		n, err := e.svc.PurgeEvidence(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "kept until retention ends")
		later, err := identity.New(identity.Config{MediaRetention: time.Nanosecond}, identity.Deps{DB: db, Accounts: e.accounts,
			PDS: e.pds, GP: e.gp, Media: e.media, Limiter: ratelimit.New(db, nil), Audit: audit.New(db, nil)})
		require.NoError(t, err)
		n, err = later.PurgeEvidence(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		_, _, err = e.media.Get(ctx, c.PhotoID, media.KindIDPhoto)
		require.ErrorIs(t, err, media.ErrNotFound)
		n, err = later.PurgeEvidence(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "once only")
	})
}

func TestCheckLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *sqlx.DB) {
		e := newEnv(t, db)
		e.accounts.add("p0", "+447700900500")
		require.NoError(t, e.svc.CheckLogin(ctx, actor, "p0"), "nothing to check at P0")

		// Megan changes GP practice between logins (the sandbox moves her).
		e.accounts.add("megan", "+447700900300")
		link, err := e.gp.LinkageFor(ctx, nhsnumber.MustParse("9990000530"), "Y90001")
		require.NoError(t, err)
		_, err = e.svc.VerifyGP(ctx, actor, "megan", gp.Details{LinkageKey: link.LinkageKey, ODSCode: link.ODSCode, AccountID: link.AccountID})
		require.NoError(t, err)
		require.NoError(t, e.pds.MovePractice(nhsnumber.MustParse("9990000530"), "Y99999"))
		require.NoError(t, e.svc.CheckLogin(ctx, actor, "megan"))
		r, _, err := e.svc.Record(ctx, "megan")
		require.NoError(t, err)
		require.Equal(t, "Y99999", r.GPODSCode)
		require.Equal(t, "Y99999", r.GPLinkageODS, "a linkage at the new practice")
		require.True(t, r.PhonePDSMatched)

		// PDS down: the login goes ahead, and the check is retried later.
		e.pds.down.Store(true)
		require.NoError(t, e.svc.CheckLogin(ctx, actor, "megan"))
		r, _, _ = e.svc.Record(ctx, "megan")
		require.True(t, r.CheckPending)
		e.pds.down.Store(false)
		n, err := e.svc.RetryPending(ctx, actor)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		r, _, _ = e.svc.Record(ctx, "megan")
		require.False(t, r.CheckPending)
		require.Equal(t, 1, e.checks.n[identity.CheckUnavailable])

		// Marked deceased: blocked, grants revoked, login refused.
		require.NoError(t, e.pds.MarkDeceased(nhsnumber.MustParse("9990000530"), time.Now()))
		require.ErrorIs(t, e.svc.CheckLogin(ctx, actor, "megan"), identity.ErrBlocked)
		require.Contains(t, e.accounts.blocked, "megan")
		require.Contains(t, e.grants.revoked, "megan")
	})
}

// jpegPhoto is a plain 320×240 JPEG.
func jpegPhoto(t *testing.T) []byte { return mediatest.Photo(t) }

// mp4Video is a minimal MP4 lasting seconds.
func mp4Video(seconds uint32) []byte { return mediatest.MP4(float64(seconds)) }

func TestNobodyReviewsTheirOwnCheck(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	e.accounts.add("checker", "+447700900130")
	c, err := e.svc.SubmitPhotoCheck(ctx, actor, "checker", identity.Evidence{DocumentType: identity.DocPassport,
		Photo: bytes.NewReader(jpegPhoto(t)), Video: bytes.NewReader(mp4Video(5))})
	require.NoError(t, err)
	_, err = e.svc.Claim(ctx, actor, identity.Staff{AccountID: "checker", Roles: []string{identity.RoleIDChecker}}, c.ID)
	require.ErrorIs(t, err, identity.ErrOwnCheck)
	got, err := e.svc.GetCheck(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, identity.CheckSubmitted, got.Status, "the check still waits for someone else")
}
