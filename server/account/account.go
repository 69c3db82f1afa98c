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
	"net/netip"
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
	"github.com/idlink/idlink/server/sending"
)

// Lifetimes of emailed links.
const (
	SignupLinkLifetime = 24 * time.Hour
	ResetLinkLifetime  = time.Hour
)

// ErrTooManyEmails is returned when an address has been sent too many
// emails recently (the budgets of package sending).
var ErrTooManyEmails = errors.New("too many emails sent to this address")

// Config is what the account capability needs from configuration.
type Config struct {
	Issuer       string // public base URL, for links in emails
	TermsVersion string // the version of the terms a new account accepts
	Development  bool   // accept Ofcom drama numbers for the sandbox
	// CodeGuesses caps the wrong security codes of an account across
	// resends; zero means DefaultCodeGuesses.
	CodeGuesses ratelimit.Rate
}

// DefaultCodeGuesses is the wrong-code cap when Config leaves it zero: ten
// wrong codes an hour, whatever they were for.
var DefaultCodeGuesses = ratelimit.Rate{N: 10, Per: time.Hour}

// Service is the account capability's Go API. It is safe for concurrent use.
type Service struct {
	cfg     Config
	st      *store
	keys    *secrets.Keyring
	hasher  *password.Hasher
	sender  *sending.Sender
	limiter *ratelimit.Limiter
	audit   *audit.Log
	metrics *metrics.Metrics

	// Compensations that could not run at once retry in the background
	// until Close.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// NewService wires the account capability. Every text and email goes
// through sender, which applies the sending budgets.
func NewService(cfg Config, db *sqlx.DB, keys *secrets.Keyring, hasher *password.Hasher, sender *sending.Sender,
	limiter *ratelimit.Limiter, log *audit.Log, m *metrics.Metrics, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	if cfg.CodeGuesses.N == 0 {
		cfg.CodeGuesses = DefaultCodeGuesses
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

// SendCode texts a new security code for (purpose, subject) to phone.
// The code is stored, and earlier codes for the subject voided, only once
// the provider has accepted the text: a failed send leaves an earlier
// code working and uses no budget. Refusals are *CodeSendError: the
// sending budgets are used up (it matches ErrTooManyCodes and says when
// to try again), or the provider failed (ErrSendFailed). A number in a
// country texts may not go to gives ErrPhoneCountry.
func (s *Service) SendCode(ctx context.Context, a audit.Actor, purpose Purpose, subject, phone, accountID string) error {
	code, id := secrets.NewDigits(CodeLength), secrets.NewID()
	who := accountID
	if who == "" {
		who = subject
	}
	client, _ := netip.ParseAddr(a.IP)
	err := s.sender.SendText(ctx, sending.Text{
		Purpose: sendingPurpose(purpose), AccountID: who, Client: client,
		Message: notify.Message{
			To: phone, Kind: codeKind(purpose), Code: code,
			Text: fmt.Sprintf("Your idlink security code is %s. It expires in %d minutes. Do not share it with anyone.", code, int(CodeLifetime.Minutes())),
		},
	})
	var (
		limited *sending.Limited
		failed  *sending.Failed
	)
	switch {
	case errors.As(err, &limited):
		s.metrics.CodesSent.WithLabelValues(string(purpose), "rate_limited").Inc()
		if aerr := s.record(ctx, a, "code.rate_limited", audit.Failure, accountID, map[string]any{"purpose": purpose, "budgets": limited.Budgets}); aerr != nil {
			return aerr
		}
		return &CodeSendError{Limited: true, RetryAt: limited.RetryAt, Err: limited}
	case errors.Is(err, sending.ErrDestination):
		return ErrPhoneCountry
	case errors.As(err, &failed):
		s.metrics.CodesSent.WithLabelValues(string(purpose), "failed").Inc()
		if aerr := s.record(ctx, a, "code.send_failed", audit.Failure, accountID, map[string]any{"purpose": purpose, "error": failed.Err.Error()}); aerr != nil {
			return aerr
		}
		return &CodeSendError{RetryAt: failed.RetryAt, Err: failed}
	case err != nil:
		return err
	}
	// Accepted: from now on this code is the one that works.
	if err := s.st.storeCode(context.WithoutCancel(ctx), s, id, code, purpose, subject, phone); err != nil {
		return err
	}
	s.metrics.CodesSent.WithLabelValues(string(purpose), "sent").Inc()
	return s.record(ctx, a, "code.sent", audit.Success, accountID, map[string]any{"purpose": purpose})
}

func sendingPurpose(p Purpose) sending.Purpose {
	switch p {
	case PurposeLogin:
		return sending.Login
	case PurposeReset:
		return sending.Reset
	}
	return sending.Signup
}

// CodeSendError says why no security code was sent: the sending budgets
// are used up (Limited; it matches ErrTooManyCodes) or the provider did
// not accept the text (it matches ErrSendFailed). RetryAt, when set, is
// when asking again can succeed.
type CodeSendError struct {
	Limited bool
	RetryAt time.Time
	Err     error
}

func (e *CodeSendError) Error() string {
	if e.Limited {
		return ErrTooManyCodes.Error() + ": " + e.Err.Error()
	}
	return ErrSendFailed.Error() + ": " + e.Err.Error()
}

// Is matches ErrTooManyCodes or ErrSendFailed.
func (e *CodeSendError) Is(target error) bool {
	return (e.Limited && target == ErrTooManyCodes) || (!e.Limited && target == ErrSendFailed)
}

// Unwrap gives the sending error.
func (e *CodeSendError) Unwrap() error { return e.Err }

// VerifyCode checks a code typed by the person. Wrong codes give
// ErrCodeWrong (the error text says how many tries are left); a code that
// has expired, been used, or had CodeMaxAttempts wrong tries gives
// ErrCodeExpired. Wrong codes are also capped per account across resends
// (Config.CodeGuesses): the wrong code that reaches the cap, and every
// check after it until the window closes, gives ErrTooManyGuesses (the
// later ones without comparing), and the person is emailed once. Guesses
// racing the last ones before the cap can add at most the live code's
// remaining tries (each code takes at most CodeMaxAttempts, atomically).
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
	who := accountID
	if who == "" {
		who = subject
	}
	guessKey := "code-guesses:" + who
	// A right code costs one read: only wrong codes are counted.
	guesses, err := s.limiter.Count(ctx, guessKey, s.cfg.CodeGuesses.Per)
	if err != nil {
		return nil, err
	}
	if guesses >= s.cfg.CodeGuesses.N {
		if aerr := s.record(ctx, a, "code.guess_limit", audit.Failure, accountID, map[string]any{"purpose": purpose}); aerr != nil {
			return nil, aerr
		}
		return nil, ErrTooManyGuesses
	}
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
		n, err := s.limiter.Add(ctx, guessKey, s.cfg.CodeGuesses.Per)
		if err != nil {
			return nil, err
		}
		switch {
		case n == s.cfg.CodeGuesses.N: // exactly one request sees this
			return nil, s.guessLimitReached(ctx, a, purpose, accountID)
		case n > s.cfg.CodeGuesses.N:
			return nil, ErrTooManyGuesses
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

// ErrTooManyGuesses: the account has had too many wrong security codes;
// logins and resets with a code stop until the window closes.
var ErrTooManyGuesses = errors.New("too many wrong security codes for this account")

// guessLimitReached records and announces the wrong guess that reached the
// cap: exactly one request sees it, however many race.
func (s *Service) guessLimitReached(ctx context.Context, a audit.Actor, purpose Purpose, accountID string) error {
	s.metrics.CodeGuessLimits.Inc()
	if err := s.record(ctx, a, "code.guess_limit_reached", audit.Failure, accountID,
		map[string]any{"purpose": purpose, "guesses": s.cfg.CodeGuesses.N, "window": s.cfg.CodeGuesses.Per.String()}); err != nil {
		return err
	}
	if accountID != "" {
		text := fmt.Sprintf("Someone entered %d wrong security codes for your idlink account, so we have stopped logins with a security code for %s. "+
			"If this was not you, someone may know your password: reset it now. If it was you, wait and try again, or log in with the idlink app or a passkey.",
			s.cfg.CodeGuesses.N, humanDuration(s.cfg.CodeGuesses.Per))
		if err := s.SendSecurityAlert(ctx, a, accountID, "code_guess_limit", text); err != nil &&
			!errors.Is(err, ErrSendFailed) && !errors.Is(err, ErrTooManyEmails) {
			return err
		}
	}
	return ErrTooManyGuesses
}

// humanDuration writes a window as people say it: "1 hour", "15 minutes".
func humanDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d == time.Hour:
		return "1 hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d%time.Minute == 0 && d == time.Minute:
		return "1 minute"
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return d.String()
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

// sendEmail sends one email within the sending budgets. A refusal or a
// provider failure is an audit event (accountID may be "" when the
// address has no account yet). stranger says that whoever caused it need
// not be signed in (a sign-up, a forgotten password).
func (s *Service) sendEmail(ctx context.Context, a audit.Actor, accountID, to string, kind notify.Kind, text, link string, stranger bool) error {
	client, _ := netip.ParseAddr(a.IP)
	err := s.sender.SendEmail(ctx, sending.Email{Stranger: stranger, Client: client,
		Message: notify.Message{To: to, Kind: kind, Text: text, Link: link}})
	var limited *sending.Limited
	switch {
	case errors.As(err, &limited):
		return errors.Join(&EmailLimitError{RetryAt: limited.RetryAt},
			s.record(ctx, a, "email.rate_limited", audit.Failure, accountID, map[string]any{"kind": kind, "budgets": limited.Budgets}))
	case errors.Is(err, sending.ErrFailed):
		return errors.Join(fmt.Errorf("%w: %w", ErrSendFailed, err),
			s.record(ctx, a, "email.send_failed", audit.Failure, accountID, map[string]any{"kind": kind, "error": err.Error()}))
	}
	return err
}

// EmailLimitError is an email refused by the sending budgets; it
// matches ErrTooManyEmails and says when asking again can succeed.
type EmailLimitError struct{ RetryAt time.Time }

func (e *EmailLimitError) Error() string        { return ErrTooManyEmails.Error() }
func (e *EmailLimitError) Is(target error) bool { return target == ErrTooManyEmails }

// SendSecurityAlert emails the account's owner about something done to
// their account that they may not have done (a login they reported as not
// theirs, say). text must hold no secrets.
func (s *Service) SendSecurityAlert(ctx context.Context, a audit.Actor, accountID string, kind notify.Kind, text string) error {
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return fmt.Errorf("security alert: %w", err)
	}
	return s.sendEmail(ctx, a, accountID, acct.Email, kind, text, s.cfg.Issuer+"/account/security", false)
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
