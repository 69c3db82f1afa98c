package account

import (
	"errors"
	"fmt"
	"net/http"
	"time"
	_ "time/tzdata" // times on pages are UK times, wherever the server runs

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/web"
)

// CodeTarget is who a security code goes to: the account it proves
// something for (its budgets and its wrong-code cap) and the number.
// Subject, when set, is what the code is bound to (a sign-up binds it to
// the number too: SignupSubject); otherwise the account.
type CodeTarget struct {
	AccountID string
	Phone     string
	Subject   string
}

func (t CodeTarget) subject() string {
	if t.Subject != "" {
		return t.Subject
	}
	return t.AccountID
}

// OtherWay is another way to go on when no text can be sent: a button
// posting to Action, or (Action "") a sentence.
type OtherWay struct {
	Label  string
	Action string
}

// CodeFlow is one journey's use of the security-code page: sign-up, login
// and password reset each have one, and CodePages serves them all with
// the same page, the same messages and the same rules.
type CodeFlow struct {
	Purpose Purpose
	// Path is the page (GET); POST Path checks a code and POST
	// Path+"/resend" sends a new one.
	Path string
	// BackLink is the page's "Back" link, if any.
	BackLink string
	// Restart is where a browser goes when its journey is not at this step.
	Restart string
	// Remember, when set, says whether to offer "remember this device"
	// (login).
	Remember func(c fiber.Ctx) bool
	// Target returns the journey's account and number, or false when the
	// journey is not at this step.
	Target func(c fiber.Ctx) (CodeTarget, bool)
	// Proved continues the journey after a right code.
	Proved func(c fiber.Ctx, t CodeTarget) error
	// Stop ends the journey when the account has had too many wrong
	// codes (optional).
	Stop func(c fiber.Ctx)
	// Others lists the other ways in, for the page that says no text
	// could be sent (optional).
	Others func(c fiber.Ctx, t CodeTarget) []OtherWay
	// Notice, when set, returns a one-time notice for the page (why the
	// journey came to a code), or "".
	Notice func(c fiber.Ctx) string
}

// CodePages serves every CodeFlow.
type CodePages struct {
	svc *Service
	r   *web.Renderer
}

// NewCodePages returns the security-code page controller.
func NewCodePages(svc *Service, r *web.Renderer) *CodePages { return &CodePages{svc: svc, r: r} }

// Register mounts f's page, its check and its resend.
func (p *CodePages) Register(pages web.Pages, f *CodeFlow) {
	pages.Get(f.Path, func(c fiber.Ctx) error { return p.page(c, f) })
	pages.Post(f.Path, func(c fiber.Ctx) error { return p.submit(c, f) })
	pages.Post(f.Path+"/resend", func(c fiber.Ctx) error { return p.resend(c, f) })
}

// codeStatus is what the last send of a flow did, kept in the session so
// that the page says only what is true.
type codeStatus struct {
	Outcome string    `json:"outcome"` // sent, resent, failed, limited
	RetryAt time.Time `json:"retry_at,omitzero"`
}

const codeStatusKey = "code_status"

func loadStatus(c fiber.Ctx, p Purpose) (codeStatus, bool) {
	m := map[Purpose]codeStatus{}
	web.Sess(c).Get(codeStatusKey, &m)
	st, ok := m[p]
	return st, ok
}

func saveStatus(c fiber.Ctx, p Purpose, st codeStatus) {
	m := map[Purpose]codeStatus{}
	web.Sess(c).Get(codeStatusKey, &m)
	m[p] = st
	web.Sess(c).Put(codeStatusKey, m)
}

// ForgetCodeStatus drops what the code page of p remembers (when its
// journey ends).
func ForgetCodeStatus(c fiber.Ctx, p Purpose) {
	m := map[Purpose]codeStatus{}
	if !web.Sess(c).Get(codeStatusKey, &m) {
		return
	}
	delete(m, p)
	if len(m) == 0 {
		web.Sess(c).Delete(codeStatusKey)
		return
	}
	web.Sess(c).Put(codeStatusKey, m)
}

// Send texts a code for f to t and shows f's page, which says what
// happened: the code was sent, no text could be sent (and what else the
// person can do), or too many were asked for (and when to try again).
func (p *CodePages) Send(c fiber.Ctx, f *CodeFlow, t CodeTarget) error {
	return p.send(c, f, t, "sent")
}

func (p *CodePages) send(c fiber.Ctx, f *CodeFlow, t CodeTarget, outcome string) error {
	err := p.svc.SendCode(c.Context(), web.Actor(c), f.Purpose, t.subject(), t.Phone, t.AccountID)
	var cse *CodeSendError
	switch {
	case err == nil:
		saveStatus(c, f.Purpose, codeStatus{Outcome: outcome})
	case errors.Is(err, ErrPhoneCountry):
		saveStatus(c, f.Purpose, codeStatus{Outcome: "destination"})
	case errors.As(err, &cse) && cse.Limited:
		saveStatus(c, f.Purpose, codeStatus{Outcome: "limited", RetryAt: cse.RetryAt})
	case errors.As(err, &cse):
		saveStatus(c, f.Purpose, codeStatus{Outcome: "failed", RetryAt: cse.RetryAt})
	default:
		return err
	}
	return c.Redirect().Status(http.StatusSeeOther).To(f.Path)
}

// CodePageData is what code.html shows.
// CodePageData is what the security-code page (code.html) shows; pages
// that render it outside CodePages fill it in too.
type CodePageData struct {
	SentTo         string
	Action, Resend string
	Remember       bool
	// Sent: a text was accepted ("We have sent …"). Failed: the last
	// send was not accepted. Limited: too many were asked for.
	// Destination: texts no longer go to the number's country.
	Sent, Failed, Limited, Destination bool
	// RetryAt and RetryIn say when to ask again ("10:42", "12 minutes").
	RetryAt, RetryIn string
	// Earlier: a code sent before can still be entered.
	Earlier bool
	Others  []OtherWay
}

// view builds the page for f's current status.
func (p *CodePages) view(c fiber.Ctx, f *CodeFlow, t CodeTarget) (web.View, error) {
	st, ok := loadStatus(c, f.Purpose)
	if !ok {
		st.Outcome = "sent" // the step is only reached through Send
	}
	d := CodePageData{SentTo: MaskPhone(t.Phone), Action: f.Path, Resend: f.Path + "/resend", Remember: f.Remember != nil && f.Remember(c)}
	v := web.View{Title: "Enter the security code", BackLink: f.BackLink, Data: &d}
	switch st.Outcome {
	case "sent", "resent":
		d.Sent = true
		if st.Outcome == "resent" {
			v.Notice = "We have sent a new security code. Codes sent earlier no longer work."
		}
		return v, nil
	case "limited":
		d.Limited = true
		v.Title = "You have asked for too many security codes"
	case "destination":
		d.Failed, d.Destination = true, true
		v.Title = "We could not send a security code"
	default:
		d.Failed = true
		v.Title = "We could not send a security code"
	}
	if !st.RetryAt.IsZero() {
		d.RetryAt, d.RetryIn = ukTime(st.RetryAt), until(p.svc.st.nowUTC(), st.RetryAt)
	}
	live, err := p.svc.LiveCode(c.Context(), f.Purpose, t.subject())
	if err != nil {
		return v, err
	}
	d.Earlier = live
	if f.Others != nil {
		d.Others = f.Others(c, t)
	}
	return v, nil
}

func (p *CodePages) render(c fiber.Ctx, status int, v web.View) error {
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return p.r.Render(c, status, "code", v)
}

func (p *CodePages) page(c fiber.Ctx, f *CodeFlow) error {
	t, ok := f.Target(c)
	if !ok {
		return c.Redirect().Status(http.StatusSeeOther).To(f.Restart)
	}
	v, err := p.view(c, f, t)
	if err != nil {
		return err
	}
	// A refusal is a 429 with Retry-After. A failed send is a page that
	// works (200): the provider's failure is counted, logged and audited
	// where it happened.
	status := http.StatusOK
	d := v.Data.(*CodePageData)
	if d.Limited {
		status = http.StatusTooManyRequests
	}
	if st, ok := loadStatus(c, f.Purpose); ok && !st.RetryAt.IsZero() && (d.Limited || d.Failed) {
		secs := int(st.RetryAt.Sub(p.svc.st.nowUTC()).Seconds()) + 1
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(max(secs, 1)))
	}
	// The notice is shown once.
	if st, ok := loadStatus(c, f.Purpose); ok && st.Outcome == "resent" {
		saveStatus(c, f.Purpose, codeStatus{Outcome: "sent"})
	}
	if f.Notice != nil {
		if n := f.Notice(c); n != "" {
			v.Notice = n
		}
	}
	return p.render(c, status, v)
}

func (p *CodePages) submit(c fiber.Ctx, f *CodeFlow) error {
	t, ok := f.Target(c)
	if !ok {
		return c.Redirect().Status(http.StatusSeeOther).To(f.Restart)
	}
	v, err := p.view(c, f, t)
	if err != nil {
		return err
	}
	v.Notice = ""
	code, valid := validCode(c.FormValue("code"))
	if !valid {
		v.Errors.Add("code", "Enter the 6-digit security code")
		return p.render(c, http.StatusOK, v)
	}
	// The code is used when the session that records what it proved is
	// saved, in the same transaction: a step that cannot be saved leaves
	// the code usable for the next try.
	use, err := p.svc.CheckCode(c.Context(), web.Actor(c), f.Purpose, t.subject(), code, t.AccountID)
	if errors.Is(err, ErrTooManyGuesses) {
		if f.Stop != nil {
			f.Stop(c)
		}
		ForgetCodeStatus(c, f.Purpose)
		return p.r.ErrorPage(c, http.StatusTooManyRequests, "You have entered too many wrong security codes",
			fmt.Sprintf("To keep your account safe, security codes cannot be used for it for up to %s. We email the account's owner when this happens. "+
				"If you have the idlink app or a passkey, you can log in with it instead. If this was not you, reset your password.",
				humanDuration(p.svc.cfg.CodeGuesses.Per)))
	}
	if msg, ok := codeError(err); ok {
		v.Errors.Add("code", msg)
		return p.render(c, http.StatusOK, v)
	}
	if err != nil {
		return err
	}
	web.Sess(c).InSave(use)
	ForgetCodeStatus(c, f.Purpose)
	return f.Proved(c, t)
}

func (p *CodePages) resend(c fiber.Ctx, f *CodeFlow) error {
	t, ok := f.Target(c)
	if !ok {
		return c.Redirect().Status(http.StatusSeeOther).To(f.Restart)
	}
	return p.send(c, f, t, "resent")
}

// ukTime writes t as a clock time in the UK ("10:42").
func ukTime(t time.Time) string {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04")
}

// until says how long from now to t, rounded up ("12 minutes",
// "1 minute", "2 hours").
func until(now, t time.Time) string {
	d := t.Sub(now)
	if d <= time.Minute {
		return "1 minute"
	}
	mins := int((d + time.Minute - 1) / time.Minute)
	if mins < 120 {
		return fmt.Sprintf("%d minutes", mins)
	}
	return fmt.Sprintf("%d hours", (mins+59)/60)
}
