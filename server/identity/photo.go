package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/trust"
)

// Document types accepted as photo ID (reference section 8).
const (
	DocPassport            = "passport"
	DocUKDrivingLicence    = "uk_driving_licence"
	DocEUDrivingLicence    = "eu_driving_licence"
	DocEUNationalIDCard    = "eu_national_id_card"
	maxRejectionReasonSize = 500
)

// DocumentTypes lists the accepted document types with their names, in
// the order a page offers them.
var DocumentTypes = []struct{ Value, Name string }{
	{DocPassport, "Passport"},
	{DocUKDrivingLicence, "UK driving licence"},
	{DocEUDrivingLicence, "European driving licence"},
	{DocEUNationalIDCard, "European national identity card"},
}

// ValidDocumentType reports whether t is an accepted document type.
func ValidDocumentType(t string) bool {
	for _, d := range DocumentTypes {
		if d.Value == t {
			return true
		}
	}
	return false
}

// Statuses of a photo ID check.
const (
	CheckSubmitted = "submitted"
	CheckInReview  = "in_review"
	CheckApproved  = "approved"
	CheckRejected  = "rejected"
)

// Check is a photo ID check: the evidence and where its review stands.
type Check struct {
	ID             string     `db:"id"`
	AccountID      string     `db:"account_id"`
	DocumentType   string     `db:"document_type"`
	PhotoID        string     `db:"photo_id"`
	PhotoType      string     `db:"photo_type"`
	VideoID        string     `db:"video_id"`
	VideoType      string     `db:"video_type"`
	Status         string     `db:"status"`
	SubmittedAt    time.Time  `db:"submitted_at"`
	ClaimedBy      *string    `db:"claimed_by"`
	ClaimedAt      *time.Time `db:"claimed_at"`
	IDValid        *bool      `db:"id_valid"`
	FaceMatch      *bool      `db:"face_match"`
	NHSNumber      *string    `db:"nhs_number"`
	Reason         string     `db:"reason"`
	DecidedBy      *string    `db:"decided_by"`
	DecidedAt      *time.Time `db:"decided_at"`
	MediaDeletedAt *time.Time `db:"media_deleted_at"`
}

// Open reports whether the check waits for a decision.
func (c Check) Open() bool { return c.Status == CheckSubmitted || c.Status == CheckInReview }

const checkCols = `id, account_id, document_type, photo_id, photo_type, video_id, video_type, status, submitted_at,
	claimed_by, claimed_at, id_valid, face_match, nhs_number, reason, decided_by, decided_at, media_deleted_at`

// Evidence is what a person uploads for a photo ID check.
type Evidence struct {
	DocumentType string
	Photo        io.Reader
	Video        io.Reader
}

// SubmitPhotoCheck stores the evidence (checked by content and encrypted)
// and queues a check for review. An account may have one open check.
// Media errors (media.ErrUnsupportedType, ErrTooLarge, …) are returned
// wrapped with the file they concern ("photo: …" or "video: …").
func (s *Service) SubmitPhotoCheck(ctx context.Context, a audit.Actor, accountID string, ev Evidence) (Check, error) {
	if !ValidDocumentType(ev.DocumentType) {
		return Check{}, fmt.Errorf("%w: choose the type of photo ID", ErrInvalid)
	}
	if c, ok, err := s.OpenCheck(ctx, accountID); err != nil {
		return Check{}, err
	} else if ok {
		return c, ErrCheckOpen
	}
	photo, err := s.d.Media.Put(ctx, media.KindIDPhoto, ev.Photo)
	if err != nil {
		s.record(ctx, a, "identity.photo_refused", false, accountID, map[string]any{"file": "photo", "error": err.Error()})
		return Check{}, fmt.Errorf("photo: %w", err)
	}
	video, err := s.d.Media.Put(ctx, media.KindFaceVideo, ev.Video)
	if err != nil {
		_ = s.d.Media.Delete(ctx, photo.ID)
		s.record(ctx, a, "identity.photo_refused", false, accountID, map[string]any{"file": "video", "error": err.Error()})
		return Check{}, fmt.Errorf("video: %w", err)
	}
	c := Check{ID: secrets.NewID(), AccountID: accountID, DocumentType: ev.DocumentType, PhotoID: photo.ID, PhotoType: photo.ContentType,
		VideoID: video.ID, VideoType: video.ContentType, Status: CheckSubmitted, SubmittedAt: s.nowUTC()}
	_, err = s.d.DB.NamedExecContext(ctx, `INSERT INTO identity_checks (id, account_id, document_type, photo_id, photo_type,
		video_id, video_type, status, submitted_at) VALUES (:id, :account_id, :document_type, :photo_id, :photo_type,
		:video_id, :video_type, :status, :submitted_at)`, c)
	if err != nil {
		_ = s.d.Media.Delete(ctx, photo.ID)
		_ = s.d.Media.Delete(ctx, video.ID)
		if migrations.IsUniqueViolation(err) {
			return Check{}, ErrCheckOpen
		}
		return Check{}, fmt.Errorf("queue photo check: %w", err)
	}
	s.record(ctx, a, "identity.photo_submitted", true, accountID, map[string]any{"check_id": c.ID, "document_type": c.DocumentType,
		"photo_type": c.PhotoType, "video_type": c.VideoType, "video_seconds": video.Duration.Seconds()})
	return c, nil
}

// OpenCheck returns the account's check waiting for a decision, if any.
func (s *Service) OpenCheck(ctx context.Context, accountID string) (Check, bool, error) {
	var c Check
	err := s.d.DB.GetContext(ctx, &c, s.d.DB.Rebind(`SELECT `+checkCols+` FROM identity_checks
		WHERE account_id = ? AND status IN (?, ?)`), accountID, CheckSubmitted, CheckInReview)
	if migrations.IsNoRows(err) {
		return Check{}, false, nil
	}
	if err != nil {
		return Check{}, false, fmt.Errorf("open check: %w", err)
	}
	return c, true, nil
}

// LatestCheck returns the account's most recent check, if any (to tell the
// person how it went).
func (s *Service) LatestCheck(ctx context.Context, accountID string) (Check, bool, error) {
	var c Check
	err := s.d.DB.GetContext(ctx, &c, s.d.DB.Rebind(`SELECT `+checkCols+` FROM identity_checks
		WHERE account_id = ? ORDER BY submitted_at DESC LIMIT 1`), accountID)
	if migrations.IsNoRows(err) {
		return Check{}, false, nil
	}
	if err != nil {
		return Check{}, false, fmt.Errorf("latest check: %w", err)
	}
	return c, true, nil
}

// ---- the back office ----

// Queue returns open checks, oldest first.
func (s *Service) Queue(ctx context.Context, limit int) ([]Check, error) {
	var out []Check
	err := s.d.DB.SelectContext(ctx, &out, s.d.DB.Rebind(`SELECT `+checkCols+` FROM identity_checks
		WHERE status IN (?, ?) ORDER BY submitted_at, id LIMIT ?`), CheckSubmitted, CheckInReview, limit)
	if err != nil {
		return nil, fmt.Errorf("review queue: %w", err)
	}
	return out, nil
}

// GetCheck returns a check by id.
func (s *Service) GetCheck(ctx context.Context, id string) (Check, error) {
	var c Check
	err := s.d.DB.GetContext(ctx, &c, s.d.DB.Rebind(`SELECT `+checkCols+` FROM identity_checks WHERE id = ?`), id)
	if migrations.IsNoRows(err) {
		return Check{}, ErrNotFound
	}
	if err != nil {
		return Check{}, fmt.Errorf("get check: %w", err)
	}
	return c, nil
}

// Claim gives a submitted check to a reviewer. Only one reviewer can
// claim a check; claiming one's own claim again is allowed.
func (s *Service) Claim(ctx context.Context, a audit.Actor, staff Staff, id string) (Check, error) {
	if !staff.CanReview() {
		return Check{}, ErrForbidden
	}
	if c, err := s.GetCheck(ctx, id); err != nil {
		return Check{}, err
	} else if c.AccountID == staff.AccountID {
		// Nobody reviews their own identity.
		s.record(ctx, a, "idcheck.claim_refused", false, c.AccountID, map[string]any{"check_id": id, "staff": staff.AccountID, "reason": "own_check"})
		return Check{}, ErrOwnCheck
	}
	now := s.nowUTC()
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE identity_checks SET status = ?, claimed_by = ?, claimed_at = ?
		WHERE id = ? AND (status = ? OR (status = ? AND claimed_by = ?))`),
		CheckInReview, staff.AccountID, now, id, CheckSubmitted, CheckInReview, staff.AccountID)
	if err != nil {
		return Check{}, fmt.Errorf("claim check: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if _, err := s.GetCheck(ctx, id); err != nil {
			return Check{}, err
		}
		s.record(ctx, a, "idcheck.claim_refused", false, "", map[string]any{"check_id": id, "staff": staff.AccountID})
		return Check{}, ErrClaimed
	}
	c, err := s.GetCheck(ctx, id)
	if err != nil {
		return Check{}, err
	}
	s.record(ctx, a, "idcheck.claimed", true, c.AccountID, map[string]any{"check_id": id, "staff": staff.AccountID})
	return c, nil
}

// Evidence returns a claimed check's photo or video for its reviewer only.
func (s *Service) Evidence(ctx context.Context, a audit.Actor, staff Staff, id string, kind media.Kind) ([]byte, media.Info, error) {
	c, err := s.GetCheck(ctx, id)
	if err != nil {
		return nil, media.Info{}, err
	}
	if !staff.CanReview() || c.Status != CheckInReview || c.ClaimedBy == nil || *c.ClaimedBy != staff.AccountID {
		s.record(ctx, a, "idcheck.evidence_refused", false, c.AccountID, map[string]any{"check_id": id, "staff": staff.AccountID})
		return nil, media.Info{}, ErrForbidden
	}
	mid := c.PhotoID
	if kind == media.KindFaceVideo {
		mid = c.VideoID
	}
	b, info, err := s.d.Media.Get(ctx, mid, kind)
	if err != nil {
		return nil, media.Info{}, fmt.Errorf("evidence: %w", err)
	}
	s.record(ctx, a, "idcheck.evidence_viewed", true, c.AccountID, map[string]any{"check_id": id, "staff": staff.AccountID, "kind": string(kind)})
	return b, info, nil
}

// SearchPDS lets a reviewer look a person up in PDS (by details or by NHS
// number) to choose the record to connect.
func (s *Service) SearchPDS(ctx context.Context, a audit.Actor, staff Staff, checkID string, d Details) (pds.Patient, error) {
	if !staff.CanReview() {
		return pds.Patient{}, ErrForbidden
	}
	var p pds.Patient
	var err error
	if d.FamilyName == "" && d.NHSNumber != "" {
		n, perr := nhsnumber.Parse(d.NHSNumber)
		if perr != nil {
			return pds.Patient{}, fmt.Errorf("%w: NHS number", ErrInvalid)
		}
		p, err = s.d.PDS.Read(ctx, n)
	} else {
		q, qerr := d.query()
		if qerr != nil {
			return pds.Patient{}, qerr
		}
		p, err = s.d.PDS.Search(ctx, q)
	}
	s.record(ctx, a, "idcheck.pds_search", err == nil, "", map[string]any{"check_id": checkID, "staff": staff.AccountID})
	switch {
	case errors.Is(err, pds.ErrNotFound):
		return pds.Patient{}, ErrNoMatch
	case errors.Is(err, pds.ErrTooManyMatches):
		return pds.Patient{}, ErrTooManyMatches
	case errors.Is(err, pds.ErrUnavailable):
		return pds.Patient{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return pds.Patient{}, fmt.Errorf("pds: %w", err)
	}
	return p, nil
}

// Decision is a reviewer's verdict on a check.
type Decision struct {
	IDValid   bool
	FaceMatch bool
	// Approve connects NHSNumber and raises the account to P9; it needs
	// IDValid and FaceMatch.
	Approve   bool
	NHSNumber string
	// Reason tells the person why the check was rejected.
	Reason string
}

// Decide records the reviewer's decision on a check they claimed. Approval
// connects the NHS number (a usable PDS record that no other account
// holds), raises the account to P9 and looks up or creates a GP linkage
// key at the person's practice so that gp_integration_credentials can be
// released. Rejection tells the person the reason. The evidence is
// deleted MediaRetention after the decision (PurgeEvidence).
func (s *Service) Decide(ctx context.Context, a audit.Actor, staff Staff, id string, d Decision) (Check, error) {
	c, err := s.GetCheck(ctx, id)
	if err != nil {
		return Check{}, err
	}
	if !staff.CanReview() || c.Status != CheckInReview || c.ClaimedBy == nil || *c.ClaimedBy != staff.AccountID {
		return Check{}, ErrClaimed
	}
	if d.Approve {
		if !d.IDValid || !d.FaceMatch {
			return Check{}, fmt.Errorf("%w: an approval needs a valid ID and a matching face", ErrInvalid)
		}
		return s.approve(ctx, a, staff, c, d)
	}
	if len(d.Reason) == 0 || len(d.Reason) > maxRejectionReasonSize {
		return Check{}, fmt.Errorf("%w: give the person a reason (at most %d characters)", ErrInvalid, maxRejectionReasonSize)
	}
	if err := s.decide(ctx, staff, c, CheckRejected, d, nil); err != nil {
		return Check{}, err
	}
	s.record(ctx, a, "idcheck.rejected", true, c.AccountID, map[string]any{"check_id": id, "staff": staff.AccountID,
		"id_valid": d.IDValid, "face_match": d.FaceMatch})
	if err := s.d.Accounts.SendSecurityAlert(ctx, a, c.AccountID, "id_check_rejected",
		"We could not confirm your identity from the photo ID and video you sent: "+d.Reason+
			" You can try again from your account."); err != nil {
		s.log.Warn("identity: tell the person of a rejection", "check_id", id, "err", err)
	}
	return s.GetCheck(ctx, id)
}

func (s *Service) approve(ctx context.Context, a audit.Actor, staff Staff, c Check, d Decision) (Check, error) {
	nhs, err := nhsnumber.Parse(d.NHSNumber)
	if err != nil {
		return Check{}, fmt.Errorf("%w: NHS number", ErrInvalid)
	}
	p, err := s.d.PDS.Read(ctx, nhs)
	switch {
	case errors.Is(err, pds.ErrNotFound):
		return Check{}, ErrNoMatch
	case errors.Is(err, pds.ErrUnavailable):
		return Check{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case err != nil:
		return Check{}, fmt.Errorf("pds read: %w", err)
	}
	if err := usable(p); err != nil {
		return Check{}, err
	}
	acct, err := s.d.Accounts.Account(ctx, c.AccountID)
	if err != nil {
		return Check{}, fmt.Errorf("identity: %w", err)
	}
	if old, ok, err := s.Record(ctx, c.AccountID); err != nil {
		return Check{}, err
	} else if ok && old.NHSNumber != p.NHSNumber.String() {
		return Check{}, ErrMismatch
	}
	link := s.linkageFor(ctx, p)
	if _, err := s.save(ctx, acct, p, RoutePhotoID, link); err != nil {
		return Check{}, err
	}
	if err := s.decide(ctx, staff, c, CheckApproved, d, &nhs); err != nil {
		return Check{}, err
	}
	if err := s.d.Accounts.RaiseLevel(ctx, a, c.AccountID, trust.P9); err != nil {
		return Check{}, err
	}
	s.record(ctx, a, "idcheck.approved", true, c.AccountID, map[string]any{"check_id": c.ID, "staff": staff.AccountID,
		"gp_linkage": link != nil})
	if err := s.d.Accounts.SendSecurityAlert(ctx, a, c.AccountID, "id_check_approved",
		"We have checked your photo ID and video: you have proved who you are. You can now use services that need this."); err != nil {
		s.log.Warn("identity: tell the person of an approval", "check_id", c.ID, "err", err)
	}
	return s.GetCheck(ctx, c.ID)
}

// linkageFor looks up or creates the person's GP linkage at their
// practice; without a practice, or when the GP system fails, there is
// none (the person is P9 all the same; the per-login check tries again).
func (s *Service) linkageFor(ctx context.Context, p pds.Patient) *gp.Linkage {
	if p.GPODSCode == "" {
		return nil
	}
	l, err := s.d.GP.LinkageFor(ctx, p.NHSNumber, p.GPODSCode)
	if err != nil {
		s.log.Warn("identity: GP linkage", "ods_code", p.GPODSCode, "err", err)
		return nil
	}
	return &l
}

func (s *Service) decide(ctx context.Context, staff Staff, c Check, status string, d Decision, nhs *nhsnumber.Number) error {
	var n any
	if nhs != nil {
		n = nhs.String()
	}
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE identity_checks SET status = ?, id_valid = ?, face_match = ?,
		nhs_number = ?, reason = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = ? AND claimed_by = ?`),
		status, d.IDValid, d.FaceMatch, n, d.Reason, staff.AccountID, s.nowUTC(), c.ID, CheckInReview, staff.AccountID)
	if err != nil {
		return fmt.Errorf("decide check: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrClaimed
	}
	return nil
}

// PurgeEvidence deletes the evidence of checks decided more than the
// retention period ago. It returns how many checks it cleared.
func (s *Service) PurgeEvidence(ctx context.Context) (int, error) {
	var due []Check
	err := s.d.DB.SelectContext(ctx, &due, s.d.DB.Rebind(`SELECT `+checkCols+` FROM identity_checks
		WHERE decided_at IS NOT NULL AND decided_at <= ? AND media_deleted_at IS NULL`), s.nowUTC().Add(-s.cfg.MediaRetention))
	if err != nil {
		return 0, fmt.Errorf("evidence due: %w", err)
	}
	for _, c := range due {
		for _, id := range []string{c.PhotoID, c.VideoID} {
			if err := s.d.Media.Delete(ctx, id); err != nil {
				return 0, fmt.Errorf("delete evidence: %w", err)
			}
		}
		if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE identity_checks SET media_deleted_at = ? WHERE id = ?`), s.nowUTC(), c.ID); err != nil {
			return 0, fmt.Errorf("mark evidence deleted: %w", err)
		}
	}
	return len(due), nil
}
