// Package account owns people's accounts: creating one (email, password,
// terms, email link, mobile number, texted code), the password check with
// its lockout, security codes sent by text message, password reset, and the
// account page. Other capabilities use it through Service, never through its
// tables.
package account

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
)

// Lifetimes of emailed links.
const (
	SignupLinkLifetime = 24 * time.Hour
	ResetLinkLifetime  = time.Hour
	EmailsPerWindow    = 5 // emails to one address per CodeWindow
)

// ErrTooManyEmails is returned when an address has been sent too many
// emails recently.
var ErrTooManyEmails = errors.New("too many emails sent to this address")

// Config is what the account capability needs from configuration.
type Config struct {
	Issuer       string // public base URL, for links in emails
	TermsVersion string // the version of the terms a new account accepts
	Development  bool   // accept Ofcom drama numbers for the sandbox
}

// Service is the account capability's Go API. It is safe for concurrent use.
type Service struct {
	cfg     Config
	st      *store
	keys    *secrets.Keyring
	hasher  *password.Hasher
	sender  notify.Sender
	limiter *ratelimit.Limiter
	audit   *audit.Log
	metrics *metrics.Metrics

	// Compensations that could not run at once retry in the background
	// until Close.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// NewService wires the account capability.
func NewService(cfg Config, db *sqlx.DB, keys *secrets.Keyring, hasher *password.Hasher, sender notify.Sender,
	limiter *ratelimit.Limiter, log *audit.Log, m *metrics.Metrics, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	bg, stop := context.WithCancel(context.Background())
	return &Service{cfg: cfg, st: &store{db: db, now: now}, keys: keys, hasher: hasher, sender: sender,
		limiter: limiter, audit: log, metrics: m, bg: bg, stopBg: stop}
}

// Close stops the compensations still retrying and waits for them.
func (s *Service) Close() {
	s.stopBg()
	s.wg.Wait()
}

// Retry schedule of a compensation that failed at once (the database
// restarting, say): back-off from compensateFirst, doubling, for at most
// compensateFor.
const (
	compensateFirst = 250 * time.Millisecond
	compensateFor   = time.Minute
)

// compensate undoes a step whose request cannot finish. It runs fn now, on
// a context of its own (the request's may have ended), and if that fails
// keeps trying in the background with back-off: a database that has just
// gone away usually comes back.
func (s *Service) compensate(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(s.bg, 2*time.Second)
	err := fn(ctx)
	cancel()
	if err == nil || s.bg.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		end := time.Now().Add(compensateFor)
		for wait := compensateFirst; time.Now().Before(end); wait *= 2 {
			t := time.NewTimer(min(wait, 5*time.Second))
			select {
			case <-s.bg.Done():
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(s.bg, 2*time.Second)
			err := fn(ctx)
			cancel()
			if err == nil {
				return
			}
		}
	}()
}

func (s *Service) codeMAC(id, code string) string { return s.keys.MAC("security-code", id+":"+code) }
func (s *Service) tokenMAC(purpose, token string) string {
	return s.keys.MAC("link:"+purpose, token)
}

// record writes an audit event; a failure to audit fails the action, so
// nothing security-relevant happens unrecorded.
func (s *Service) record(ctx context.Context, a audit.Actor, typ string, outcome audit.Outcome, accountID string, detail map[string]any) error {
	return s.audit.Record(ctx, a, typ, outcome, accountID, detail)
}

// Account returns an account by id.
func (s *Service) Account(ctx context.Context, id string) (Account, error) { return s.st.byID(ctx, id) }

// Hasher returns the password hasher, for capabilities that check passwords.
func (s *Service) Hasher() *password.Hasher { return s.hasher }

// ---- passwords ----

// CheckPassword authenticates an email address and password. Unknown
// addresses and wrong passwords fail alike (ErrBadPassword) and cost the
// same hash; five wrong passwords lock an account for 15 minutes
// (ErrLocked), and an unknown address is "locked" the same way so that the
// answer reveals nothing. A registration whose email link has not been
// followed yet gives ErrSignupPending when its password is right.
func (s *Service) CheckPassword(ctx context.Context, a audit.Actor, email, pw string) (Account, error) {
	email = NormalizeEmail(email)
	acct, err := s.st.byEmail(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return Account{}, s.unknownEmail(ctx, a, email, pw)
	}
	if err != nil {
		return Account{}, err
	}
	attempt, err := s.st.reservePasswordAttempt(ctx, acct.ID)
	if errors.Is(err, ErrLocked) {
		if aerr := s.record(ctx, a, "login.password", audit.Failure, acct.ID, map[string]any{"reason": "locked"}); aerr != nil {
			return Account{}, aerr
		}
		return Account{}, ErrLocked
	}
	if err != nil {
		return Account{}, err
	}
	ok, rehash, err := s.hasher.Verify(ctx, acct.PasswordHash, pw)
	if err != nil {
		// The check could not finish (no hashing slot before the deadline,
		// a damaged hash): the attempt is given back, so that failures of
		// ours never count towards a lockout.
		s.compensate(func(ctx context.Context) error { return s.st.releasePasswordAttempt(ctx, acct.ID) })
		return Account{}, fmt.Errorf("check password: %w", err)
	}
	if !ok {
		detail := map[string]any{"reason": "wrong_password", "attempt": attempt}
		if attempt >= MaxFailedLogins {
			detail["locked"] = true
			if attempt == MaxFailedLogins {
				s.metrics.Lockouts.Inc()
				if err := s.record(ctx, a, "account.locked", audit.Success, acct.ID, map[string]any{"minutes": int(LockDuration.Minutes())}); err != nil {
					return Account{}, err
				}
			}
		}
		if err := s.record(ctx, a, "login.password", audit.Failure, acct.ID, detail); err != nil {
			return Account{}, err
		}
		if attempt >= MaxFailedLogins {
			return Account{}, ErrLocked
		}
		return Account{}, ErrBadPassword
	}
	newHash := ""
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			newHash = "" // rehashed at the next login
		}
	}
	if err := s.st.passwordOK(ctx, acct.ID, newHash); err != nil {
		// The password was right: its reservation must not stay counted
		// as a failure when the database could not take the answer.
		s.compensate(func(ctx context.Context) error { return s.st.passwordOK(ctx, acct.ID, "") })
		return Account{}, err
	}
	if acct.Status == StatusBlocked {
		if err := s.record(ctx, a, "login.password", audit.Failure, acct.ID, map[string]any{"reason": "blocked"}); err != nil {
			return Account{}, err
		}
		return Account{}, ErrBlocked
	}
	if err := s.record(ctx, a, "login.password", audit.Success, acct.ID, nil); err != nil {
		return Account{}, err
	}
	return acct, nil
}

// ErrBlocked is returned for an account that may not sign in.
var ErrBlocked = errors.New("this account cannot be used to sign in")

func (s *Service) unknownEmail(ctx context.Context, a audit.Actor, email, pw string) error {
	// The same limit as a real account, so a locked-out message does not
	// tell anyone whether the address is registered.
	allowed, err := s.limiter.Take(ctx, "login-unknown:"+s.keys.MAC("email", email), MaxFailedLogins, LockDuration)
	if err != nil {
		return err
	}
	if !allowed {
		if err := s.record(ctx, a, "login.password", audit.Failure, "", map[string]any{"reason": "unknown_email_locked"}); err != nil {
			return err
		}
		return ErrLocked
	}
	// A registration waiting for its email link: let its owner resume.
	sus, err := s.st.pendingSignups(ctx, email)
	if err != nil {
		return err
	}
	if len(sus) > 0 {
		ok, _, err := s.hasher.Verify(ctx, sus[0].PasswordHash, pw)
		if err != nil {
			return fmt.Errorf("check password: %w", err)
		}
		if ok {
			return &PendingSignupError{SignupID: sus[0].ID, Email: email}
		}
	} else if err := s.hasher.Dummy(ctx, pw); err != nil {
		return fmt.Errorf("check password: %w", err)
	}
	if err := s.record(ctx, a, "login.password", audit.Failure, "", map[string]any{"reason": "unknown_email"}); err != nil {
		return err
	}
	return ErrBadPassword
}

// PendingSignupError says the email address belongs to a registration whose
// link has not been followed; it matches ErrSignupPending.
type PendingSignupError struct {
	SignupID string
	Email    string
}

func (e *PendingSignupError) Error() string        { return ErrSignupPending.Error() }
func (e *PendingSignupError) Is(target error) bool { return target == ErrSignupPending }

// CheckNewPassword applies the password policy and hashes an acceptable
// password. Policy failures are password.Err* errors.
func (s *Service) CheckNewPassword(ctx context.Context, email, pw string) (string, error) {
	if err := password.Check(pw, email); err != nil {
		return "", err
	}
	h, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// ---- security codes ----

// SendCode texts a new security code for (purpose, subject) to phone,
// voiding any earlier code for the same subject. At most CodesPerWindow
// codes go to one number per CodeWindow (ErrTooManyCodes); a provider
// failure gives ErrSendFailed and the person can simply ask again.
func (s *Service) SendCode(ctx context.Context, a audit.Actor, purpose Purpose, subject, phone, accountID string) error {
	allowed, err := s.limiter.Take(ctx, "code:"+phone, CodesPerWindow, CodeWindow)
	if err != nil {
		return err
	}
	if !allowed {
		s.metrics.CodesSent.WithLabelValues(string(purpose), "rate_limited").Inc()
		if err := s.record(ctx, a, "code.rate_limited", audit.Failure, accountID, map[string]any{"purpose": purpose}); err != nil {
			return err
		}
		return ErrTooManyCodes
	}
	code, err := s.st.issueCode(ctx, s, purpose, subject, phone)
	if err != nil {
		return err
	}
	msg := notify.Message{
		Channel: notify.SMS, To: phone, Kind: codeKind(purpose), Code: code,
		Text: fmt.Sprintf("Your idlink security code is %s. It expires in %d minutes. Do not share it with anyone.", code, int(CodeLifetime.Minutes())),
	}
	if err := s.sender.Send(ctx, msg); err != nil {
		s.metrics.CodesSent.WithLabelValues(string(purpose), "failed").Inc()
		if aerr := s.record(ctx, a, "code.send_failed", audit.Failure, accountID, map[string]any{"purpose": purpose, "error": err.Error()}); aerr != nil {
			return aerr
		}
		return fmt.Errorf("%w: %w", ErrSendFailed, err)
	}
	s.metrics.CodesSent.WithLabelValues(string(purpose), "sent").Inc()
	return s.record(ctx, a, "code.sent", audit.Success, accountID, map[string]any{"purpose": purpose})
}

// VerifyCode checks a code typed by the person and uses it. Wrong codes
// give ErrCodeWrong (the error text says how many tries are left); a code
// that has expired, been used, or had CodeMaxAttempts wrong tries gives
// ErrCodeExpired.
func (s *Service) VerifyCode(ctx context.Context, a audit.Actor, purpose Purpose, subject, code, accountID string) error {
	use, err := s.CheckCode(ctx, a, purpose, subject, code, accountID)
	if err != nil {
		return err
	}
	return use(ctx, s.st.db)
}

// CodeUse marks a checked code used and records it; run it in the
// transaction that keeps what the code proved (a login's session, through
// web.Session.InSave), so that a failure to keep it leaves the code usable.
type CodeUse func(ctx context.Context, tx sqlx.ExtContext) error

// CheckCode is VerifyCode without using the code: a right code gives the
// CodeUse that uses it. A wrong guess still takes one of the code's tries
// at once.
func (s *Service) CheckCode(ctx context.Context, a audit.Actor, purpose Purpose, subject, code, accountID string) (CodeUse, error) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
	id, left, err := s.st.checkCode(ctx, s, purpose, subject, code)
	switch {
	case err == nil:
		return func(ctx context.Context, tx sqlx.ExtContext) error {
			if err := s.st.useCode(ctx, tx, id); err != nil {
				return err
			}
			return s.audit.RecordIn(ctx, tx, a, "code.verified", audit.Success, accountID, map[string]any{"purpose": purpose})
		}, nil
	case errors.Is(err, ErrCodeWrong):
		if aerr := s.record(ctx, a, "code.wrong", audit.Failure, accountID, map[string]any{"purpose": purpose, "tries_left": left}); aerr != nil {
			return nil, aerr
		}
		if left == 0 {
			return nil, ErrCodeExpired
		}
		return nil, &WrongCodeError{TriesLeft: left}
	case errors.Is(err, ErrCodeExpired):
		if aerr := s.record(ctx, a, "code.expired", audit.Failure, accountID, map[string]any{"purpose": purpose}); aerr != nil {
			return nil, aerr
		}
		return nil, err
	default:
		return nil, err
	}
}

// WrongCodeError is a wrong code with tries left; it matches ErrCodeWrong.
type WrongCodeError struct{ TriesLeft int }

func (e *WrongCodeError) Error() string        { return ErrCodeWrong.Error() }
func (e *WrongCodeError) Is(target error) bool { return target == ErrCodeWrong }

func codeKind(p Purpose) notify.Kind {
	switch p {
	case PurposeSignup:
		return "signup_code"
	case PurposeReset:
		return "reset_code"
	case PurposePhoneChange:
		return "phone_change_code"
	default:
		return "login_code"
	}
}

// ---- email ----

// sendEmail sends one email, at most EmailsPerWindow to an address per
// CodeWindow. A refusal or a provider failure is an audit event (accountID
// may be "" when the address has no account yet).
func (s *Service) sendEmail(ctx context.Context, a audit.Actor, accountID, to string, kind notify.Kind, text, link string) error {
	allowed, err := s.limiter.Take(ctx, "email:"+s.keys.MAC("email", to), EmailsPerWindow, CodeWindow)
	if err != nil {
		return err
	}
	if !allowed {
		return errors.Join(ErrTooManyEmails, s.record(ctx, a, "email.rate_limited", audit.Failure, accountID, map[string]any{"kind": kind}))
	}
	if err := s.sender.Send(ctx, notify.Message{Channel: notify.Email, To: to, Kind: kind, Text: text, Link: link}); err != nil {
		return errors.Join(fmt.Errorf("%w: %w", ErrSendFailed, err),
			s.record(ctx, a, "email.send_failed", audit.Failure, accountID, map[string]any{"kind": kind, "error": err.Error()}))
	}
	return nil
}

// SendSecurityAlert emails the account's owner about something done to
// their account that they may not have done (a login they reported as not
// theirs, say). text must hold no secrets.
func (s *Service) SendSecurityAlert(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, text string) error {
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("security alert: %w", err)
	}
	return s.sendEmail(ctx, a, accountID, acct.Email, kind, text, s.cfg.Issuer+"/account/security")
}

func (s *Service) link(path, token string) string {
	return s.cfg.Issuer + path + "?" + url.Values{"token": {token}}.Encode()
}

// ---- maintenance ----

// Purge deletes expired codes, links and signups; run it periodically.
func (s *Service) Purge(ctx context.Context) error {
	if _, err := s.st.purgeCodes(ctx); err != nil {
		return err
	}
	cutoff := s.st.nowUTC().Add(-24 * time.Hour)
	for _, q := range []string{`DELETE FROM signups WHERE expires_at <= ?`, `DELETE FROM password_resets WHERE expires_at <= ?`,
		`DELETE FROM email_changes WHERE expires_at <= ?`, `DELETE FROM phone_changes WHERE expires_at <= ?`} {
		if _, err := s.st.db.ExecContext(ctx, s.st.db.Rebind(q), cutoff); err != nil {
			return fmt.Errorf("purge links: %w", err)
		}
	}
	return nil
}
