package login

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/trust"
	"github.com/idlink/idlink/server/web"
)

// Approvals is what the phone-approval factor needs of the push service;
// *push.Service implements it.
type Approvals interface {
	CanAsk(ctx context.Context, accountID string) (bool, error)
	Create(ctx context.Context, req push.Request) (push.Approval, error)
	Result(ctx context.Context, accountID, id string) (push.Approval, error)
	Watch(ctx context.Context, accountID, id string, poll time.Duration) (push.Approval, error)
	Cancel(ctx context.Context, accountID, id string) error
	Consume(ctx context.Context, accountID, id string) error
}

// NewPhoneApproval returns the phone-approval factor: after the password,
// an account with a companion-app device is asked on its phone. It proves
// Cd and Cm; put it after a remembered browser and before the texted code,
// which it falls back to.
func NewPhoneApproval(a Approvals) *PhoneApproval { return &PhoneApproval{a: a} }

const (
	approveName = "push"
	approveKey  = "login.push" // session: the pending request of this browser
	// sseSlice bounds one server-sent-events response; the browser's
	// EventSource reconnects at once (retry: 500).
	sseSlice = 20 * time.Second
)

// PhoneApproval is the factor that asks the person's phone to approve the
// login.
type PhoneApproval struct {
	a Approvals
}

// approvePages are the approval factor's pages for one journey.
type approvePages struct {
	*PhoneApproval
	j *Journey
}

// pendingApproval is what the session keeps of the request it made.
type pendingApproval struct {
	ID     string `json:"id"`
	Number int    `json:"number"`
}

// Name implements Factor.
func (f *PhoneApproval) Name() string { return approveName }

// Proves implements Factor: the phone is something the person has (Cd)
// and its biometric check is a FIDO credential (Cm).
func (f *PhoneApproval) Proves() trust.Credentials { return trust.Credentials{trust.Cd, trust.Cm} }

// Available implements Factor: the account has a device that may be asked.
func (f *PhoneApproval) Available(c fiber.Ctx, acct account.Account, _ trust.Credentials) bool {
	ok, err := f.a.CanAsk(c.Context(), acct.ID)
	if err != nil {
		return false
	}
	return ok
}

// Begin implements Factor: asks the phone and shows the waiting page.
func (f *PhoneApproval) Begin(c fiber.Ctx, j *Journey, acct account.Account) error {
	return approvePages{f, j}.begin(c, acct)
}

func (f approvePages) begin(c fiber.Ctx, acct account.Account) error {
	st, _ := f.j.load(c)
	browser, os := web.BrowserAndOS(c.Get(fiber.HeaderUserAgent))
	ap, err := f.a.Create(c.Context(), push.Request{AccountID: acct.ID, ClientName: st.ClientName, Browser: browser, OS: os, IP: web.ClientIP(c)})
	switch {
	case errors.Is(err, push.ErrPending):
		// This browser's own request (a refresh, the back button) is
		// shown again; another browser's request is not replaced.
		var mine pendingApproval
		if web.Sess(c).Get(approveKey, &mine) {
			if cur, rerr := f.a.Result(c.Context(), acct.ID, mine.ID); rerr == nil && cur.Status == push.StatusPending {
				return redirect(c, "/login/approve")
			}
		}
		return f.fallback(c, acct, "Another login is waiting for approval on your phone, so this one uses a security code.")
	case errors.Is(err, push.ErrRateLimited):
		return f.fallback(c, acct, "We have asked your phone too many times recently, so this login uses a security code.")
	case errors.Is(err, push.ErrPaused), errors.Is(err, push.ErrNoDevice):
		return f.fallback(c, acct, "")
	case err != nil:
		return err
	}
	web.Sess(c).Put(approveKey, pendingApproval{ID: ap.ID, Number: ap.Number})
	return redirect(c, "/login/approve")
}

// fallback moves the journey to the texted security code, with a notice
// saying why.
func (f approvePages) fallback(c fiber.Ctx, acct account.Account, notice string) error {
	web.Sess(c).Delete(approveKey)
	if notice != "" {
		factorNotice.Set(c, notice)
	}
	return f.j.switchFactor(c, acct, smsName)
}

// Routes implements Factor.
func (f *PhoneApproval) Routes(p web.Pages, j *Journey) {
	h := approvePages{f, j}
	p.Get("/login/approve", h.page)
	p.Post("/login/approve", h.check)
	p.Post("/login/approve/code", h.useCode)
	p.Post("/login/approve/retry", h.retry)
	p.Get("/login/approve/events", h.events)
}

// approveData is what the waiting and declined pages show.
type approveData struct {
	Number     int
	ClientName string
	Expires    time.Time
	Declined   bool
	Reported   bool
}

func (f approvePages) current(c fiber.Ctx) (account.Account, pendingApproval, bool) {
	acct, ok := f.j.AccountInProgress(c, approveName)
	if !ok {
		return account.Account{}, pendingApproval{}, false
	}
	var p pendingApproval
	if !web.Sess(c).Get(approveKey, &p) {
		return account.Account{}, pendingApproval{}, false
	}
	return acct, p, true
}

func (f approvePages) page(c fiber.Ctx) error {
	acct, p, ok := f.current(c)
	if !ok {
		return f.moved(c)
	}
	ap, err := f.a.Result(c.Context(), acct.ID, p.ID)
	if err != nil {
		return err
	}
	if ap.Status != push.StatusPending {
		return f.outcome(c, acct, ap)
	}
	return f.render(c, http.StatusOK, ap, "")
}

func (f approvePages) render(c fiber.Ctx, status int, ap push.Approval, notice string) error {
	st, _ := f.j.load(c)
	return f.j.r.Render(c, status, "approve", web.View{Title: "Check your phone", Notice: notice, BackLink: "/login",
		Data: approveData{Number: ap.Number, ClientName: st.ClientName, Expires: ap.ExpiresAt}})
}

// check is "Check again" (and where the page's script sends the browser
// when the phone has answered).
func (f approvePages) check(c fiber.Ctx) error {
	acct, p, ok := f.current(c)
	if !ok {
		return f.moved(c)
	}
	ap, err := f.a.Result(c.Context(), acct.ID, p.ID)
	if err != nil {
		return err
	}
	if ap.Status == push.StatusPending {
		return f.render(c, http.StatusOK, ap, "Your phone has not answered yet. Approve the request on your phone, then check again.")
	}
	return f.outcome(c, acct, ap)
}

// moved answers a request of the waiting page that arrives once the
// journey has left it: a "Check again" sent by the page's script as the
// person chose "Send me a security code instead" (the cancel closes the
// request, and the event stream says so) must not undo that choice. The
// browser goes to the journey's current step, or to the login page.
func (f approvePages) moved(c fiber.Ctx) error {
	st, ok := f.j.load(c)
	if !ok || st.AccountID == "" {
		return redirect(c, "/login")
	}
	switch st.Factor {
	case smsName:
		return redirect(c, "/login/code")
	case passkeyName:
		return redirect(c, "/login/passkey")
	}
	return redirect(c, "/login")
}

// outcome continues the journey from a request that is no longer pending.
func (f approvePages) outcome(c fiber.Ctx, acct account.Account, ap push.Approval) error {
	switch ap.Status {
	case push.StatusApproved:
		if err := f.a.Consume(c.Context(), acct.ID, ap.ID); err != nil {
			if errors.Is(err, push.ErrNotPending) {
				return redirect(c, "/login") // taken by another request of this session
			}
			return err
		}
		web.Sess(c).Delete(approveKey)
		return f.j.ProvedAll(c, trust.Cd, trust.Cm)
	case push.StatusExpired:
		f.audit(c, acct, ap, "expired")
		return f.fallback(c, acct, "Your phone did not answer in time, so this login uses a security code.")
	case push.StatusUndeliverable:
		return f.fallback(c, acct, "We could not reach your phone, so this login uses a security code.")
	case push.StatusCancelled:
		return f.fallback(c, acct, "")
	case push.StatusVerifying:
		return f.render(c, http.StatusOK, ap, "Your phone is answering. Check again in a moment.")
	}
	// Declined in one way or another: never a silent fallback.
	st, _ := f.j.load(c)
	return f.j.r.Render(c, http.StatusForbidden, "approve_declined", web.View{Title: "The login was not approved",
		Data: approveData{ClientName: st.ClientName, Declined: true, Reported: ap.Status == push.StatusReported}})
}

func (f approvePages) audit(c fiber.Ctx, acct account.Account, ap push.Approval, reason string) {
	_ = f.j.audit.Record(c.Context(), web.Actor(c), "push.fallback", audit.Failure, acct.ID,
		map[string]any{"approval_id": ap.ID, "reason": reason})
}

// useCode is "Send me a security code instead".
func (f approvePages) useCode(c fiber.Ctx) error {
	acct, p, ok := f.current(c)
	if !ok {
		return redirect(c, "/login")
	}
	if err := f.a.Cancel(c.Context(), acct.ID, p.ID); err != nil && !errors.Is(err, push.ErrNotFound) {
		return err
	}
	return f.fallback(c, acct, "")
}

// retry asks the phone again after a decline.
func (f approvePages) retry(c fiber.Ctx) error {
	acct, _, ok := f.current(c)
	if !ok {
		return redirect(c, "/login")
	}
	web.Sess(c).Delete(approveKey)
	return f.begin(c, acct)
}

// events streams the request's outcome to the waiting page's script as
// server-sent events: one "closed" event when the phone answers (or the
// request ends), then the stream ends; a comment every few seconds keeps
// proxies from closing it. Each response lasts at most sseSlice and the
// browser reconnects.
func (f approvePages) events(c fiber.Ctx) error {
	acct, p, ok := f.current(c)
	if !ok {
		return c.SendStatus(http.StatusNoContent) // EventSource stops on 204
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	accountID, id := acct.ID, p.ID
	return c.SendStreamWriter(func(w *bufio.Writer) {
		fmt.Fprint(w, "retry: 500\n\n")
		if w.Flush() != nil {
			return
		}
		end := time.Now().Add(sseSlice)
		for time.Now().Before(end) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ap, err := f.a.Watch(ctx, accountID, id, time.Second)
			cancel()
			if err == nil && ap.Status.Final() {
				b, _ := json.Marshal(map[string]string{"status": string(ap.Status)})
				fmt.Fprintf(w, "event: closed\ndata: %s\n\n", b)
				_ = w.Flush()
				return
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return
			}
			fmt.Fprint(w, ": waiting\n\n")
			if w.Flush() != nil {
				return // the browser has gone
			}
		}
	})
}
