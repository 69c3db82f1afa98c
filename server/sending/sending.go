// Package sending is the one place that decides whether a text message or
// an email may be sent, and sends it: every budget (per sign-up journey,
// per account, per destination number, per client address and network,
// and the overall ceilings), the countries texts may go to, and what a
// failed send costs (nothing). Capabilities send through a Sender and
// never call the provider themselves.
//
// Budgets are counted in the database (ratelimit.Reserve), so they hold
// across goroutines and replicas: an event is counted against all of its
// budgets at once or against none. A send the provider did not accept is
// given back.
package sending

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
)

// Rate is a limit of N per window, written "N/window" ("10/15m").
type Rate = ratelimit.Rate

// Limits are the sending budgets. Every one has an IDLINK_* variable
// (server/config) and a default sized so that a person's normal first
// day never meets one: creating an account, three logins, a password
// reset and a fallback from a phone approval to a code, all within 15
// minutes, each with a resend or two.
type Limits struct {
	// SignupNumbers bounds the distinct numbers one sign-up journey (an
	// account waiting for its phone) may text (IDLINK_SMS_SIGNUP_NUMBERS).
	SignupNumbers Rate
	// SignupCodes bounds the texts of one sign-up journey
	// (IDLINK_SMS_SIGNUP_CODES).
	SignupCodes Rate
	// AccountTexts bounds the texts of one account, whatever they are for
	// (IDLINK_SMS_PER_ACCOUNT).
	AccountTexts Rate
	// NewNumber bounds the texts to one number that is not verified on the
	// account asking (sign-up codes) (IDLINK_SMS_PER_NEW_NUMBER).
	NewNumber Rate
	// VerifiedNumber bounds the texts to one number verified on the
	// account asking (login and reset codes): a budget of its own, which a
	// stranger's sign-up with the same number cannot use up
	// (IDLINK_SMS_PER_VERIFIED_NUMBER).
	VerifiedNumber Rate
	// Address and Network bound sign-up texts per client address and per
	// network (/24 for IPv4, /56 for IPv6) (IDLINK_SMS_PER_ADDRESS,
	// IDLINK_SMS_PER_NETWORK).
	Address Rate
	Network Rate
	// CeilingPerMinute and CeilingPerHour bound every text together
	// (IDLINK_SMS_CEILING_PER_MINUTE, IDLINK_SMS_CEILING_PER_HOUR).
	CeilingPerMinute int
	CeilingPerHour   int
	// SignupShare is the percentage of the ceilings sign-up texts may use;
	// past it only login and reset texts to verified numbers are sent
	// (IDLINK_SMS_SIGNUP_SHARE).
	SignupShare int
	// Countries lists the ISO 3166 region codes texts may go to besides
	// the United Kingdom (IDLINK_SMS_COUNTRIES). Empty: UK mobiles only.
	Countries []string

	// EmailRecipient bounds the emails to one address
	// (IDLINK_EMAIL_PER_RECIPIENT).
	EmailRecipient Rate
	// EmailAddress bounds the emails a stranger can cause (sign-up,
	// forgotten password) per client address (IDLINK_EMAIL_PER_ADDRESS).
	EmailAddress Rate
}

// DefaultLimits are the documented defaults (docs/SECURITY.md).
func DefaultLimits() Limits {
	return Limits{
		SignupNumbers:    Rate{N: 3, Per: 24 * time.Hour},
		SignupCodes:      Rate{N: 6, Per: 24 * time.Hour},
		AccountTexts:     Rate{N: 12, Per: 15 * time.Minute},
		NewNumber:        Rate{N: 5, Per: time.Hour},
		VerifiedNumber:   Rate{N: 20, Per: 15 * time.Minute},
		Address:          Rate{N: 10, Per: time.Hour},
		Network:          Rate{N: 30, Per: time.Hour},
		CeilingPerMinute: 1500,
		CeilingPerHour:   30000,
		SignupShare:      50,
		EmailRecipient:   Rate{N: 5, Per: 15 * time.Minute},
		EmailAddress:     Rate{N: 30, Per: time.Hour},
	}
}

// Purpose says what a text is for.
type Purpose string

// Purposes of texts.
const (
	Signup Purpose = "signup" // proving a new number (not yet verified)
	Login  Purpose = "login"  // a login code to the account's verified number
	Reset  Purpose = "reset"  // a reset code to the account's verified number
)

// verified reports whether texts of p go to a number verified on the
// account.
func (p Purpose) verified() bool { return p == Login || p == Reset }

// Text is one text message to send.
type Text struct {
	Purpose Purpose
	// AccountID is the account asking (for a sign-up, the account waiting
	// for its phone, which is also the sign-up journey).
	AccountID string
	// Client is the client address of the request that asked.
	Client netip.Addr
	// Message is what to send; Message.To is the E.164 number.
	Message notify.Message
}

// Email is one email to send.
type Email struct {
	// Stranger says that whoever caused it need not be signed in (a
	// sign-up, a forgotten password): the client address budget applies.
	Stranger bool
	Client   netip.Addr
	Message  notify.Message
}

// Errors of Send*.
var (
	// ErrLimited is matched by *Limited: a budget is used up.
	ErrLimited = errors.New("sending budget used up")
	// ErrDestination: texts may not go to this number's country.
	ErrDestination = errors.New("texts cannot be sent to this country")
	// ErrFailed is matched by *Failed: the provider did not accept the
	// message.
	ErrFailed = errors.New("the message could not be sent")
)

// Budget names, as in Limited.Budget, metrics and audit events.
const (
	BudgetSignupNumbers  = "signup_numbers"
	BudgetSignupCodes    = "signup_codes"
	BudgetAccount        = "account"
	BudgetNewNumber      = "new_number"
	BudgetVerifiedNumber = "verified_number"
	BudgetAddress        = "address"
	BudgetNetwork        = "network"
	BudgetCeiling        = "ceiling"
	BudgetEmailRecipient = "email_recipient"
	BudgetEmailAddress   = "email_address"
)

// Limited is a refusal: the budgets used up and when the last of them
// opens again.
type Limited struct {
	Budgets []string
	RetryAt time.Time
}

func (e *Limited) Error() string {
	return fmt.Sprintf("%s: %s until %s", ErrLimited, strings.Join(e.Budgets, ", "), e.RetryAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLimited) true.
func (e *Limited) Is(target error) bool { return target == ErrLimited }

// Failed is a send the provider did not accept. RetryAt, when set, is
// when the provider asked us to try again (Retry-After).
type Failed struct {
	RetryAt time.Time
	Err     error
}

func (e *Failed) Error() string { return ErrFailed.Error() + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrFailed) true.
func (e *Failed) Is(target error) bool { return target == ErrFailed }

// Unwrap gives the provider's error (notify.ErrSendFailed,
// notify.ErrInvalidRecipient, a context error).
func (e *Failed) Unwrap() error { return e.Err }

// Config is what a Sender needs beyond its collaborators.
type Config struct {
	Limits Limits
	// Deadline bounds each send, retries included, when the caller's
	// context has no earlier deadline (IDLINK_NOTIFY_DEADLINE).
	Deadline time.Duration
	// AllowDrama accepts Ofcom's drama numbers (development only).
	AllowDrama bool
}

// Sender applies the budgets and sends through the provider. It is safe
// for concurrent use.
type Sender struct {
	cfg      Config
	provider notify.Sender
	limiter  *ratelimit.Limiter
	keys     *secrets.Keyring
	metrics  *metrics.Metrics
	log      *slog.Logger
	now      func() time.Time
	// lastCeilingLog throttles the ceiling's error log line to one a
	// minute per tier (unix seconds).
	lastCeilingLog [2]atomic.Int64
}

// New returns a Sender over provider.
func New(cfg Config, provider notify.Sender, limiter *ratelimit.Limiter, keys *secrets.Keyring, m *metrics.Metrics, log *slog.Logger, now func() time.Time) *Sender {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 10 * time.Second
	}
	return &Sender{cfg: cfg, provider: provider, limiter: limiter, keys: keys, metrics: m, log: log, now: now}
}

// Limits returns the budgets in force.
func (s *Sender) Limits() Limits { return s.cfg.Limits }

// LongestWindow is the longest window of any budget: counters older than
// that may be purged.
func (l Limits) LongestWindow() time.Duration {
	d := time.Hour
	for _, r := range []Rate{l.SignupNumbers, l.SignupCodes, l.AccountTexts, l.NewNumber, l.VerifiedNumber, l.Address, l.Network,
		l.EmailRecipient, l.EmailAddress} {
		d = max(d, r.Per)
	}
	return d
}

// AllowsDestination reports whether texts may go to e164: a UK number, or
// one of a country on the allow-list.
func (s *Sender) AllowsDestination(e164 string) bool {
	if s.cfg.AllowDrama && len(e164) == 13 && strings.HasPrefix(e164, "+447700900") {
		return true
	}
	n, err := phonenumbers.Parse(e164, "GB")
	if err != nil {
		return false
	}
	region := phonenumbers.GetRegionCodeForNumber(n)
	return region == "GB" || slices.Contains(s.cfg.Limits.Countries, region)
}

// hash keeps phone numbers and email addresses out of the counters' keys.
func (s *Sender) hash(v string) string { return s.keys.MAC("sending", v)[:22] }

// Network returns the network of a client address: its /24 for IPv4, its
// /56 for IPv6.
func Network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// budgets lists the budgets a text must fit in, each with its name.
func (s *Sender) textBudgets(t Text) ([]ratelimit.Budget, map[string]string) {
	l := s.cfg.Limits
	to := s.hash(t.Message.To)
	names := map[string]string{}
	var bs []ratelimit.Budget
	add := func(name string, b ratelimit.Budget) {
		names[b.Key] = name
		bs = append(bs, b)
	}
	add(BudgetAccount, ratelimit.Of("sms:account:"+t.AccountID, l.AccountTexts))
	share := 100
	if t.Purpose.verified() {
		add(BudgetVerifiedNumber, ratelimit.Of("sms:verified:"+to, l.VerifiedNumber))
	} else {
		share = l.SignupShare
		add(BudgetNewNumber, ratelimit.Of("sms:new:"+to, l.NewNumber))
		add(BudgetSignupCodes, ratelimit.Of("sms:journey:"+t.AccountID, l.SignupCodes))
		// The marker counts this journey's texts to this number; a number
		// not texted yet also takes one of the journey's distinct numbers.
		marker := "sms:journey-number:" + t.AccountID + ":" + to
		add(BudgetSignupCodes, ratelimit.Budget{Key: marker, Limit: l.SignupCodes.N, Window: l.SignupNumbers.Per})
		numbers := ratelimit.Of("sms:journey-numbers:"+t.AccountID, l.SignupNumbers)
		numbers.FirstOf = marker
		add(BudgetSignupNumbers, numbers)
		if t.Client.IsValid() {
			add(BudgetAddress, ratelimit.Of("sms:address:"+t.Client.Unmap().String(), l.Address))
			add(BudgetNetwork, ratelimit.Of("sms:network:"+Network(t.Client).String(), l.Network))
		}
	}
	add(BudgetCeiling, ratelimit.Budget{Key: "sms:all:minute", Limit: max(1, l.CeilingPerMinute*share/100), Window: time.Minute})
	add(BudgetCeiling, ratelimit.Budget{Key: "sms:all:hour", Limit: max(1, l.CeilingPerHour*share/100), Window: time.Hour})
	return bs, names
}

// SendText sends a text if it fits in every budget. A refusal is a
// *Limited (nothing sent, nothing counted); a number in a country not
// allowed is ErrDestination; a provider failure is a *Failed, and the
// text then costs no budget.
func (s *Sender) SendText(ctx context.Context, t Text) error {
	t.Message.Channel = notify.SMS
	if !s.AllowsDestination(t.Message.To) {
		s.metrics.SendRefused.WithLabelValues("sms", "destination").Inc()
		return ErrDestination
	}
	budgets, names := s.textBudgets(t)
	res, err := s.limiter.Reserve(ctx, budgets...)
	if ex := (*ratelimit.Exceeded)(nil); errors.As(err, &ex) {
		return s.refused("sms", t.Purpose, ex, names)
	}
	if err != nil {
		return err
	}
	return s.deliver(ctx, "sms", res, t.Message)
}

// SendEmail sends an email if it fits in its budgets; errors as SendText.
func (s *Sender) SendEmail(ctx context.Context, e Email) error {
	e.Message.Channel = notify.Email
	l := s.cfg.Limits
	names := map[string]string{}
	b := ratelimit.Of("email:recipient:"+s.hash(strings.ToLower(e.Message.To)), l.EmailRecipient)
	names[b.Key] = BudgetEmailRecipient
	budgets := []ratelimit.Budget{b}
	if e.Stranger && e.Client.IsValid() {
		b := ratelimit.Of("email:address:"+e.Client.Unmap().String(), l.EmailAddress)
		names[b.Key] = BudgetEmailAddress
		budgets = append(budgets, b)
	}
	res, err := s.limiter.Reserve(ctx, budgets...)
	if ex := (*ratelimit.Exceeded)(nil); errors.As(err, &ex) {
		return s.refused("email", "", ex, names)
	}
	if err != nil {
		return err
	}
	return s.deliver(ctx, "email", res, e.Message)
}

// deliver sends m within the deadline; a failure gives the reservation
// back.
func (s *Sender) deliver(ctx context.Context, channel string, res *ratelimit.Reservation, m notify.Message) error {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Deadline)
	defer cancel()
	err := s.provider.Send(sctx, m)
	if err == nil {
		s.metrics.Sends.WithLabelValues(channel, "sent").Inc()
		return nil
	}
	s.metrics.Sends.WithLabelValues(channel, "failed").Inc()
	// The budget is given back even when the caller has gone.
	if rerr := res.Release(context.WithoutCancel(ctx)); rerr != nil {
		s.log.Error("sending: give back the budget of a failed send", "channel", channel, "err", rerr)
	}
	f := &Failed{Err: err}
	if d, ok := notify.RetryAfter(err); ok {
		f.RetryAt = s.now().Add(d).UTC()
	}
	return f
}

// refused counts and explains a refusal.
func (s *Sender) refused(channel string, purpose Purpose, ex *ratelimit.Exceeded, names map[string]string) error {
	l := &Limited{RetryAt: ex.RetryAt}
	for _, k := range ex.Keys {
		name := names[k]
		if !slices.Contains(l.Budgets, name) {
			l.Budgets = append(l.Budgets, name)
		}
		s.metrics.SendRefused.WithLabelValues(channel, name).Inc()
	}
	if slices.Contains(l.Budgets, BudgetCeiling) {
		tier := "all"
		if purpose == Signup {
			tier = "signup"
		}
		s.metrics.CeilingReached.WithLabelValues(tier).Inc()
		s.logCeiling(tier, purpose)
	}
	return l
}

// logCeiling writes the ceiling's error line, at most once a minute per
// tier.
func (s *Sender) logCeiling(tier string, purpose Purpose) {
	i := 0
	if tier == "all" {
		i = 1
	}
	now := s.now().Unix()
	last := s.lastCeilingLog[i].Load()
	if now-last < 60 || !s.lastCeilingLog[i].CompareAndSwap(last, now) {
		return
	}
	msg := "text-message ceiling reached: sign-up texts are refused, login and reset texts still go"
	if tier == "all" {
		msg = "text-message ceiling reached: every text is refused"
	}
	s.log.Error(msg, "tier", tier, "purpose", string(purpose),
		"per_minute", s.cfg.Limits.CeilingPerMinute, "per_hour", s.cfg.Limits.CeilingPerHour, "signup_share", s.cfg.Limits.SignupShare)
}
