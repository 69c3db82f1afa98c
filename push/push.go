// Package push asks a person's phone to approve a login made elsewhere.
//
// A login in a browser that needs a second factor creates an approval
// request (Service.Create): a record in the database with a two-digit
// number the browser shows and a secret nonce. The request is delivered to
// every active companion-app device of the account: over the device's
// WebSocket when one of the server's replicas holds it (Hub), otherwise by
// an FCM data message that wakes the app (Sender). The person types the
// number on the phone and approves with fingerprint or face: the app
// answers with a FIDO assertion whose challenge is derived from the nonce
// and the typed number (Challenge), so a wrong number or a replayed answer
// cannot verify. The browser learns the outcome through Service.Watch or
// Service.Result.
//
// Replicas cooperate through a Bus (in-process for one node, PostgreSQL
// LISTEN/NOTIFY for several); the database is the source of truth, so a
// replica that may have missed notifications re-reads the pending requests
// of the devices it holds.
//
// The package knows nothing of web pages: the login journey and the
// companion API call it with values read from requests.
package push

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations"
)

// Status is where an approval request stands.
type Status string

// Statuses of an approval request. Only StatusPending is live; every other
// status is final except StatusVerifying, which lasts while one answer's
// assertion is checked.
const (
	StatusPending       Status = "pending"
	StatusVerifying     Status = "verifying"
	StatusApproved      Status = "approved"
	StatusDenied        Status = "denied"        // the person said no
	StatusReported      Status = "reported"      // "this wasn't me"
	StatusMismatched    Status = "mismatched"    // the number typed on the phone was wrong
	StatusFailed        Status = "failed"        // the phone's assertion did not verify
	StatusExpired       Status = "expired"       // nobody answered in time
	StatusCancelled     Status = "cancelled"     // the browser chose a security code instead
	StatusUndeliverable Status = "undeliverable" // no device could be reached
)

// Final reports whether the status can no longer change.
func (s Status) Final() bool { return s != StatusPending && s != StatusVerifying }

// Decisions a phone may send.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
	DecisionReport  = "report" // "this wasn't me"
)

// Sentinel errors callers branch on.
var (
	// ErrNoDevice: the account has no active companion-app device.
	ErrNoDevice = errors.New("push: no device to ask")
	// ErrPaused: the person reported a request as not theirs recently.
	ErrPaused = errors.New("push: approvals are paused for this account")
	// ErrRateLimited: too many requests for the account recently.
	ErrRateLimited = errors.New("push: too many approval requests")
	// ErrPending: another request of the account is still waiting.
	ErrPending = errors.New("push: another approval request is pending")
	// ErrNotFound: no such request (or not the caller's).
	ErrNotFound = errors.New("push: approval request not found")
	// ErrNotPending: the request has already been answered or closed.
	ErrNotPending = errors.New("push: approval request is no longer pending")
	// ErrExpired: the request's time ran out.
	ErrExpired = errors.New("push: approval request has expired")
	// ErrNumberMismatch: the number typed on the phone is not the one the
	// browser shows. The request is closed.
	ErrNumberMismatch = errors.New("push: the number does not match")
	// ErrAssertion: the phone's FIDO assertion did not verify. The request
	// is closed. The wrapped error is fido's.
	ErrAssertion = errors.New("push: the approval could not be verified")
	// ErrDeviceRemoved: the answering device has been removed.
	ErrDeviceRemoved = errors.New("push: device has been removed")
	// ErrInvalid: malformed input (a decision or number out of range).
	ErrInvalid = errors.New("push: invalid input")
)

// Defaults of Config.
const (
	DefaultTTL          = 60 * time.Second
	DefaultAckTimeout   = 2 * time.Second
	DefaultPresenceWait = 250 * time.Millisecond
	DefaultPerWindow    = 5
	DefaultWindow       = 15 * time.Minute
	DefaultPause        = time.Hour
	// Keep is how long requests are kept after they expire before Purge
	// deletes them.
	Keep = 24 * time.Hour
	// verifyGrace is how long after expiry an answer may still be under
	// verification before the request is failed.
	verifyGrace = time.Minute
)

// Maximum lengths of the descriptive fields of a request; longer values
// are cut (they come from the browser's user agent and the client's name).
const (
	maxClientName = 100
	maxAgentField = 64
	maxIP         = 64
)

// Config holds the rules configuration may change. Zero values take the
// defaults.
type Config struct {
	// TTL is how long a request waits for an answer.
	TTL time.Duration
	// AckTimeout is how long a socket delivery may go unacknowledged
	// before the device is woken by FCM.
	AckTimeout time.Duration
	// PresenceWait is how long the creator waits to hear that a replica
	// holds a socket of the device before using FCM at once.
	PresenceWait time.Duration
	// PerWindow requests per account per Window at most.
	PerWindow int
	Window    time.Duration
	// Pause is how long approvals stop after "this wasn't me".
	Pause time.Duration
}

func (c Config) withDefaults() Config {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.PresenceWait <= 0 {
		c.PresenceWait = DefaultPresenceWait
	}
	if c.PerWindow <= 0 {
		c.PerWindow = DefaultPerWindow
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Pause <= 0 {
		c.Pause = DefaultPause
	}
	return c
}

// Request describes a login waiting for approval: who, to what, from where.
type Request struct {
	AccountID string
	// ClientName is the service being logged in to ("" for idlink itself).
	ClientName string
	// Browser and OS describe the browser (from its user agent).
	Browser, OS string
	// IP is the browser's address.
	IP string
}

// Approval is a stored approval request.
type Approval struct {
	ID         string     `db:"id"`
	AccountID  string     `db:"account_id"`
	ClientName string     `db:"client_name"`
	Browser    string     `db:"browser"`
	OS         string     `db:"os"`
	IP         string     `db:"ip"`
	Number     int        `db:"number"`
	Nonce      []byte     `db:"nonce"`
	Status     Status     `db:"status"`
	CreatedAt  time.Time  `db:"created_at"`
	ExpiresAt  time.Time  `db:"expires_at"`
	AnsweredAt *time.Time `db:"answered_at"`
	AnsweredBy *string    `db:"answered_by"`
	ConsumedAt *time.Time `db:"consumed_at"`
}

const approvalCols = `id, account_id, client_name, browser, os, ip, number, nonce, status,
	created_at, expires_at, answered_at, answered_by, consumed_at`

func (a *Approval) utc() {
	a.CreatedAt, a.ExpiresAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC()
	for _, p := range []**time.Time{&a.AnsweredAt, &a.ConsumedAt} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
}

// Challenge returns the WebAuthn challenge an approval's answer must sign
// for number: SHA-256 over a label, the request id, the server nonce and
// the two digits typed. The app computes the same from the nonce it was
// sent and the number the person typed.
func Challenge(id string, nonce []byte, number int) []byte {
	h := sha256.New()
	h.Write([]byte("idlink push approval v1\x00"))
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(nonce)
	h.Write([]byte{0})
	var n [2]byte
	n[0], n[1] = byte('0'+number/10%10), byte('0'+number%10)
	h.Write(n[:])
	return h.Sum(nil)
}

// Devices is what the service needs of the device store; *device.Store
// implements it.
type Devices interface {
	ListForAccount(ctx context.Context, accountID string) ([]device.Device, error)
	Get(ctx context.Context, id string) (device.Device, error)
	ClearPushToken(ctx context.Context, id, dead string) error
}

// Verifier checks FIDO assertions; *fido.Service implements it.
type Verifier interface {
	VerifyAssertion(ctx context.Context, want fido.Expected, body []byte) (fido.Credential, error)
}

// Auditor records the service's audit events (requests, deliveries,
// answers, fallbacks). success is the event's outcome.
type Auditor interface {
	Audit(ctx context.Context, typ string, success bool, accountID string, detail map[string]any)
}

// Alerter tells a person that a request was reported as not theirs.
type Alerter interface {
	PushReported(ctx context.Context, a Approval) error
}

// Deps are the service's collaborators. Sender may be nil (no FCM: a
// device without a socket cannot be reached); Alerter may be nil.
type Deps struct {
	DB       *sqlx.DB
	Devices  Devices
	Verifier Verifier
	Bus      Bus
	Sender   Sender
	Audit    Auditor
	Alerter  Alerter
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service creates approval requests, delivers them and takes their
// answers. It is safe for concurrent use. Start it with Run.
type Service struct {
	d   Deps
	cfg Config
	now func() time.Time
	log *slog.Logger
	hub *Hub

	mu      sync.Mutex
	waiters map[string][]chan Event // approval id → who waits for its events

	bg   sync.WaitGroup
	done chan struct{}
	once sync.Once
}

// New returns a service. Call Run to start taking bus events.
func New(cfg Config, d Deps) (*Service, error) {
	if d.DB == nil || d.Devices == nil || d.Verifier == nil || d.Bus == nil || d.Audit == nil {
		return nil, errors.New("push: db, devices, verifier, bus and audit are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &Service{d: d, cfg: cfg.withDefaults(), now: d.Now, log: d.Logger,
		waiters: map[string][]chan Event{}, done: make(chan struct{})}
	s.hub = newHub(s)
	d.Bus.Subscribe(s)
	return s, nil
}

// Config returns the service's rules, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Hub returns the service's hub of live device sockets.
func (s *Service) Hub() *Hub { return s.hub }

// Close stops background deliveries and closes every socket the hub holds
// with 1001 (going away). It waits for running deliveries to end.
func (s *Service) Close() {
	s.once.Do(func() { close(s.done) })
	s.hub.closeAll()
	s.bg.Wait()
}

func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CanAsk reports whether a login of the account may be approved on a
// phone now: it has an active companion-app device and approvals are not
// paused.
func (s *Service) CanAsk(ctx context.Context, accountID string) (bool, error) {
	if _, paused, err := s.Paused(ctx, accountID); err != nil || paused {
		return false, err
	}
	devices, err := s.d.Devices.ListForAccount(ctx, accountID)
	if err != nil {
		return false, fmt.Errorf("push: list devices: %w", err)
	}
	return len(devices) > 0, nil
}

// Create records an approval request for req.AccountID and starts
// delivering it to the account's devices. It fails with ErrPaused,
// ErrNoDevice, ErrRateLimited or ErrPending when no request may be made;
// each refusal is audited.
func (s *Service) Create(ctx context.Context, req Request) (Approval, error) {
	if req.AccountID == "" {
		return Approval{}, fmt.Errorf("%w: account id is required", ErrInvalid)
	}
	refuse := func(err error, reason string) (Approval, error) {
		s.d.Audit.Audit(ctx, "push.request_refused", false, req.AccountID, map[string]any{"reason": reason})
		return Approval{}, err
	}
	devices, err := s.d.Devices.ListForAccount(ctx, req.AccountID)
	if err != nil {
		return Approval{}, fmt.Errorf("push: list devices: %w", err)
	}
	if len(devices) == 0 {
		return Approval{}, ErrNoDevice
	}
	a := Approval{
		ID: newID(), AccountID: req.AccountID,
		ClientName: clip(req.ClientName, maxClientName), Browser: clip(req.Browser, maxAgentField),
		OS: clip(req.OS, maxAgentField), IP: clip(req.IP, maxIP),
		Number: newNumber(), Nonce: randomBytes(32), Status: StatusPending,
	}
	err = s.insert(ctx, &a)
	if errors.Is(err, ErrPending) {
		// A pending request whose time has run out no longer blocks:
		// close it (rarely needed, so not on the common path) and retry.
		var n int64
		if n, err = s.expireStale(ctx, a.AccountID); err == nil && n > 0 {
			err = s.insert(ctx, &a)
		} else if err == nil {
			err = ErrPending
		}
	}
	var paused *pausedError
	switch {
	case errors.As(err, &paused):
		return refuse(fmt.Errorf("%w until %s", ErrPaused, paused.until.Format(time.RFC3339)), "paused")
	case errors.Is(err, ErrRateLimited):
		return refuse(err, "rate_limited")
	case errors.Is(err, ErrPending):
		return refuse(err, "pending")
	case err != nil:
		return Approval{}, fmt.Errorf("push: create request: %w", err)
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.deliver(a, devices)
	}()
	s.d.Audit.Audit(ctx, "push.requested", true, a.AccountID, map[string]any{
		"approval_id": a.ID, "client_name": a.ClientName, "devices": len(devices)})
	return a, nil
}

// pausedError carries the end of a pause found while inserting.
type pausedError struct{ until time.Time }

func (e *pausedError) Error() string { return ErrPaused.Error() }
func (e *pausedError) Unwrap() error { return ErrPaused }

// insert writes a new pending request if approvals are not paused and the
// account is under its limit: a *pausedError, ErrRateLimited, or
// ErrPending when another request of the account is pending (the
// one-pending index refuses it). It is one query and one insert, without
// a transaction: the index keeps two requests from being pending at once,
// so two inserts cannot both pass a count taken before either.
func (s *Service) insert(ctx context.Context, a *Approval) error {
	// The request is created when its row is written.
	now := s.nowUTC()
	a.CreatedAt, a.ExpiresAt = now, now.Add(s.cfg.TTL)
	var st struct {
		Recent int        `db:"recent"`
		Until  *time.Time `db:"until"`
	}
	if err := s.d.DB.GetContext(ctx, &st, s.d.DB.Rebind(`SELECT
		(SELECT COUNT(*) FROM push_approvals WHERE account_id = ? AND created_at > ?) AS recent,
		(SELECT until FROM push_pauses WHERE account_id = ? AND until > ?) AS until`),
		a.AccountID, now.Add(-s.cfg.Window), a.AccountID, now); err != nil {
		return fmt.Errorf("count recent requests: %w", err)
	}
	if st.Until != nil {
		return &pausedError{until: st.Until.UTC()}
	}
	if st.Recent >= s.cfg.PerWindow {
		return ErrRateLimited
	}
	_, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`INSERT INTO push_approvals (`+approvalCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)`),
		a.ID, a.AccountID, a.ClientName, a.Browser, a.OS, a.IP, a.Number, a.Nonce, a.Status, a.CreatedAt, a.ExpiresAt)
	if migrations.IsUniqueViolation(err) {
		return ErrPending
	}
	if err != nil {
		return fmt.Errorf("insert request: %w", err)
	}
	return nil
}

// expireStale closes the account's pending requests whose time has run
// out, and reports how many it closed.
func (s *Service) expireStale(ctx context.Context, accountID string) (int64, error) {
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE push_approvals SET status = ?
		WHERE account_id = ? AND status = ? AND expires_at <= ?`), StatusExpired, accountID, StatusPending, s.nowUTC())
	if err != nil {
		return 0, fmt.Errorf("expire old requests: %w", err)
	}
	return res.RowsAffected()
}

// Get returns a request by id.
func (s *Service) Get(ctx context.Context, id string) (Approval, error) {
	var a Approval
	err := s.d.DB.GetContext(ctx, &a, s.d.DB.Rebind(`SELECT `+approvalCols+` FROM push_approvals WHERE id = ?`), id)
	if migrations.IsNoRows(err) {
		return Approval{}, ErrNotFound
	}
	if err != nil {
		return Approval{}, fmt.Errorf("push: get request: %w", err)
	}
	a.utc()
	return a, nil
}

// Result returns the account's request id as it stands now, closing it as
// expired when its time has run out.
func (s *Service) Result(ctx context.Context, accountID, id string) (Approval, error) {
	a, err := s.Get(ctx, id)
	if err != nil {
		return Approval{}, err
	}
	if a.AccountID != accountID {
		return Approval{}, ErrNotFound
	}
	if a.Status == StatusPending && !s.nowUTC().Before(a.ExpiresAt) {
		if _, err := s.close(ctx, a, StatusExpired, ""); err != nil && !errors.Is(err, ErrNotPending) {
			return Approval{}, err
		}
		return s.Get(ctx, id)
	}
	// An answer whose check never finished (the replica stopped while
	// verifying) fails once the request's time is well past.
	if a.Status == StatusVerifying && s.nowUTC().After(a.ExpiresAt.Add(verifyGrace)) {
		if err := s.finish(ctx, a, StatusFailed); err != nil {
			return Approval{}, err
		}
		return s.Get(ctx, id)
	}
	return a, nil
}

// Pending returns the account's requests that are waiting for an answer.
func (s *Service) Pending(ctx context.Context, accountID string) ([]Approval, error) {
	var out []Approval
	err := s.d.DB.SelectContext(ctx, &out, s.d.DB.Rebind(`SELECT `+approvalCols+` FROM push_approvals
		WHERE account_id = ? AND status = ? AND expires_at > ? ORDER BY created_at`), accountID, StatusPending, s.nowUTC())
	if err != nil {
		return nil, fmt.Errorf("push: pending requests: %w", err)
	}
	for i := range out {
		out[i].utc()
	}
	return out, nil
}

// pendingFor returns the live requests of several accounts (a replica
// catching up after a bus outage).
func (s *Service) pendingFor(ctx context.Context, accountIDs []string) ([]Approval, error) {
	var out []Approval
	for len(accountIDs) > 0 {
		n := min(len(accountIDs), 500)
		q, args, err := sqlx.In(`SELECT `+approvalCols+` FROM push_approvals
			WHERE status = ? AND expires_at > ? AND account_id IN (?)`, StatusPending, s.nowUTC(), accountIDs[:n])
		if err != nil {
			return nil, err
		}
		var part []Approval
		if err := s.d.DB.SelectContext(ctx, &part, s.d.DB.Rebind(q), args...); err != nil {
			return nil, fmt.Errorf("push: pending requests: %w", err)
		}
		out = append(out, part...)
		accountIDs = accountIDs[n:]
	}
	for i := range out {
		out[i].utc()
	}
	return out, nil
}

// Cancel closes the account's pending request id because the browser chose
// a security code instead. It is not an error when the request is already
// closed.
func (s *Service) Cancel(ctx context.Context, accountID, id string) error {
	a, err := s.Result(ctx, accountID, id)
	if err != nil {
		return err
	}
	if a.Status != StatusPending {
		return nil
	}
	if _, err := s.close(ctx, a, StatusCancelled, ""); err != nil && !errors.Is(err, ErrNotPending) {
		return err
	}
	s.d.Audit.Audit(ctx, "push.fallback", true, accountID, map[string]any{"approval_id": id, "reason": "chose_code"})
	return nil
}

// Consume takes an approved request into the browser's session: it
// succeeds once only, and only for a request that was approved.
func (s *Service) Consume(ctx context.Context, accountID, id string) error {
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE push_approvals SET consumed_at = ?
		WHERE id = ? AND account_id = ? AND status = ? AND consumed_at IS NULL`), s.nowUTC(), id, accountID, StatusApproved)
	if err != nil {
		return fmt.Errorf("push: consume approval: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("push: consume approval: %w", err)
	} else if n != 1 {
		return ErrNotPending
	}
	return nil
}

// close moves a pending request to a final status (or verifying) and tells
// every replica. It returns ErrNotPending when someone else closed it
// first.
func (s *Service) close(ctx context.Context, a Approval, to Status, deviceID string) (Approval, error) {
	now := s.nowUTC()
	var by any
	if deviceID != "" {
		by = deviceID
	}
	res, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE push_approvals
		SET status = ?, answered_at = ?, answered_by = ? WHERE id = ? AND status = ?`), to, now, by, a.ID, StatusPending)
	if err != nil {
		return Approval{}, fmt.Errorf("push: close request: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Approval{}, fmt.Errorf("push: close request: %w", err)
	} else if n != 1 {
		return Approval{}, ErrNotPending
	}
	a.Status, a.AnsweredAt = to, &now
	if deviceID != "" {
		a.AnsweredBy = &deviceID
	}
	if to.Final() {
		s.publish(ctx, Event{Kind: EventClosed, ApprovalID: a.ID, AccountID: a.AccountID, Status: to})
	}
	return a, nil
}

// finish moves a request from verifying to its final status.
func (s *Service) finish(ctx context.Context, a Approval, to Status) error {
	if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`UPDATE push_approvals SET status = ? WHERE id = ? AND status = ?`),
		to, a.ID, StatusVerifying); err != nil {
		return fmt.Errorf("push: finish request: %w", err)
	}
	s.publish(ctx, Event{Kind: EventClosed, ApprovalID: a.ID, AccountID: a.AccountID, Status: to})
	return nil
}

// Answer is what a phone sends about a request.
type Answer struct {
	// Decision is DecisionApprove, DecisionDeny or DecisionReport.
	Decision string
	// Number is the number the person typed (approve only).
	Number int
	// Assertion is the WebAuthn assertion JSON (approve only), made over
	// Challenge(id, nonce, Number).
	Assertion []byte
}

// Answer takes a phone's answer to request id. dev is the authenticated
// device. Every answer is single use: the first one closes the request,
// later ones get ErrNotPending. An approval with the wrong number closes
// the request (ErrNumberMismatch); one whose assertion does not verify
// closes it too (ErrAssertion). "This wasn't me" closes it, pauses
// approvals for the account and alerts the person.
func (s *Service) Answer(ctx context.Context, dev device.Device, id string, ans Answer) (Approval, error) {
	if err := ans.check(); err != nil {
		return Approval{}, err
	}
	// The device may have been removed since its JWT was checked.
	current, err := s.d.Devices.Get(ctx, dev.ID)
	if errors.Is(err, device.ErrRemoved) || errors.Is(err, device.ErrNotFound) {
		s.d.Audit.Audit(ctx, "push.answer_refused", false, dev.AccountID, map[string]any{"approval_id": id, "device_id": dev.ID, "reason": "device_removed"})
		return Approval{}, ErrDeviceRemoved
	}
	if err != nil {
		return Approval{}, fmt.Errorf("push: check device: %w", err)
	}
	a, err := s.Result(ctx, current.AccountID, id)
	if err != nil {
		return Approval{}, err
	}
	detail := map[string]any{"approval_id": a.ID, "device_id": current.ID}
	switch a.Status {
	case StatusPending:
	case StatusExpired:
		s.d.Audit.Audit(ctx, "push.answer_refused", false, a.AccountID, with(detail, "reason", "expired"))
		return a, ErrExpired
	default:
		s.d.Audit.Audit(ctx, "push.answer_refused", false, a.AccountID, with(detail, "reason", "not_pending", "status", a.Status))
		return a, ErrNotPending
	}
	switch ans.Decision {
	case DecisionDeny:
		if a, err = s.close(ctx, a, StatusDenied, current.ID); err != nil {
			return a, err
		}
		s.d.Audit.Audit(ctx, "push.denied", true, a.AccountID, detail)
		return a, nil
	case DecisionReport:
		return s.report(ctx, a, current.ID, detail)
	}
	return s.approve(ctx, a, current, ans, detail)
}

// check refuses an answer that is not well formed (ErrInvalid).
func (ans Answer) check() error {
	switch ans.Decision {
	case DecisionApprove:
		if ans.Number < 10 || ans.Number > 99 {
			return fmt.Errorf("%w: number must be two digits", ErrInvalid)
		}
		if len(ans.Assertion) == 0 {
			return fmt.Errorf("%w: an approval needs an assertion", ErrInvalid)
		}
	case DecisionDeny, DecisionReport:
	default:
		return fmt.Errorf("%w: decision must be approve, deny or report", ErrInvalid)
	}
	return nil
}

// report closes a pending request as "this wasn't me", pauses approvals
// for the account and alerts the person.
func (s *Service) report(ctx context.Context, a Approval, deviceID string, detail map[string]any) (Approval, error) {
	a, err := s.close(ctx, a, StatusReported, deviceID)
	if err != nil {
		return a, err
	}
	until := s.nowUTC().Add(s.cfg.Pause)
	if err := s.pause(ctx, a.AccountID, until, "reported"); err != nil {
		return a, err
	}
	s.d.Audit.Audit(ctx, "push.reported", false, a.AccountID, with(detail, "paused_until", until))
	if s.d.Alerter != nil {
		if err := s.d.Alerter.PushReported(ctx, a); err != nil {
			s.log.Error("push: alert after report", "approval_id", a.ID, "err", err)
		}
	}
	return a, nil
}

// approve checks an approval of a pending request: the number, then the
// assertion, after taking the request.
func (s *Service) approve(ctx context.Context, a Approval, current device.Device, ans Answer, detail map[string]any) (Approval, error) {
	var err error
	if ans.Number != a.Number {
		if a, err = s.close(ctx, a, StatusMismatched, current.ID); err != nil {
			return a, err
		}
		s.d.Audit.Audit(ctx, "push.number_mismatch", false, a.AccountID, detail)
		return a, ErrNumberMismatch
	}
	// Take the request before checking the assertion: a replay of the
	// same answer then finds it closed, and never reaches the signature
	// counter (which would block the credential as a clone).
	if a, err = s.close(ctx, a, StatusVerifying, current.ID); err != nil {
		return a, err
	}
	_, verr := s.d.Verifier.VerifyAssertion(ctx, fido.Expected{
		Challenge: Challenge(a.ID, a.Nonce, ans.Number), AccountID: a.AccountID, CredentialID: current.FIDOCredentialID,
	}, ans.Assertion)
	if verr != nil {
		if err := s.finish(ctx, a, StatusFailed); err != nil {
			return a, err
		}
		a.Status = StatusFailed
		s.d.Audit.Audit(ctx, "push.approval_failed", false, a.AccountID, with(detail, "error", verr.Error()))
		return a, fmt.Errorf("%w: %w", ErrAssertion, verr)
	}
	if err := s.finish(ctx, a, StatusApproved); err != nil {
		return a, err
	}
	a.Status = StatusApproved
	s.d.Audit.Audit(ctx, "push.approved", true, a.AccountID, detail)
	return a, nil
}

// Paused reports whether approvals are paused for the account, and until
// when.
func (s *Service) Paused(ctx context.Context, accountID string) (time.Time, bool, error) {
	var until time.Time
	err := s.d.DB.GetContext(ctx, &until, s.d.DB.Rebind(`SELECT until FROM push_pauses WHERE account_id = ? AND until > ?`),
		accountID, s.nowUTC())
	if migrations.IsNoRows(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("push: read pause: %w", err)
	}
	return until.UTC(), true, nil
}

func (s *Service) pause(ctx context.Context, accountID string, until time.Time, reason string) error {
	_, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`INSERT INTO push_pauses (account_id, until, reason) VALUES (?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET until = excluded.until, reason = excluded.reason`), accountID, until, reason)
	if err != nil {
		return fmt.Errorf("push: pause approvals: %w", err)
	}
	return nil
}

// Purge deletes requests that expired more than Keep ago (whatever their
// status) and lapsed pauses.
func (s *Service) Purge(ctx context.Context) error {
	now := s.nowUTC()
	if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`DELETE FROM push_approvals WHERE expires_at <= ?`), now.Add(-Keep)); err != nil {
		return fmt.Errorf("push: purge requests: %w", err)
	}
	if _, err := s.d.DB.ExecContext(ctx, s.d.DB.Rebind(`DELETE FROM push_pauses WHERE until <= ?`), now); err != nil {
		return fmt.Errorf("push: purge pauses: %w", err)
	}
	return nil
}

// DeviceRemoved tells every replica to close the sockets of a device that
// has just been removed; its answers are refused from now on (the device
// store refuses it).
func (s *Service) DeviceRemoved(ctx context.Context, deviceID string) {
	s.publish(ctx, Event{Kind: EventDeviceRemoved, DeviceID: deviceID})
}

// Watch waits until request id is no longer pending or ctx ends, and
// returns its status then. It wakes on the bus's "closed" events and looks
// at the database at least every poll (so a lost notification costs at
// most poll).
func (s *Service) Watch(ctx context.Context, accountID, id string, poll time.Duration) (Approval, error) {
	ch := s.wait(id)
	defer s.unwait(id, ch)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		a, err := s.Result(ctx, accountID, id)
		if err != nil || a.Status.Final() {
			return a, err
		}
		wake := time.NewTimer(time.Until(a.ExpiresAt) + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			wake.Stop()
			return a, ctx.Err()
		case <-ch:
		case <-t.C:
		case <-wake.C:
		}
		wake.Stop()
	}
}

// wait registers interest in the events of one request.
func (s *Service) wait(id string) chan Event {
	ch := make(chan Event, 8)
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch
}

func (s *Service) unwait(id string, ch chan Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = list
	}
}

// notifyWaiters passes an event to whoever waits on its request, never
// blocking.
func (s *Service) notifyWaiters(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiters[ev.ApprovalID] {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (s *Service) publish(ctx context.Context, ev Event) {
	if err := s.d.Bus.Publish(context.WithoutCancel(ctx), ev); err != nil {
		// The database stays right; replicas catch up when they resync or
		// when the browser looks.
		s.log.Error("push: publish", "kind", ev.Kind, "approval_id", ev.ApprovalID, "err", err)
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// clip cuts s to at most n bytes on a character boundary and drops control
// characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimSpace(s)
}

// newNumber returns a uniformly random number from 10 to 99.
func newNumber() int {
	n, err := rand.Int(rand.Reader, big.NewInt(90))
	if err != nil {
		panic(fmt.Sprintf("push: random number: %v", err))
	}
	return 10 + int(n.Int64())
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("push: random bytes: %v", err))
	}
	return b
}

// newID returns a random request id: 16 bytes as 32 hex digits, prefixed
// with the time so that ids sort roughly by creation.
func newID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
	return fmt.Sprintf("%x%x", b[:6], randomBytes(10))
}
