package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/oidc"
)

// The adapters below let one capability use another through the small
// interface the user defines, so that no capability imports another.

// people gives the OIDC provider the claims about an account: the
// account's own, and what identity proofing established. It lives in the
// wiring so that no capability imports another.
type people struct {
	accounts *account.Service
	identity *identity.Service
}

// Person implements oidc.People.
func (p *people) Person(ctx context.Context, accountID string) (oidc.Person, error) {
	a, err := p.accounts.Account(ctx, accountID)
	if errors.Is(err, account.ErrNotFound) {
		return oidc.Person{}, fmt.Errorf("%w: %s", oidc.ErrNoPerson, accountID)
	}
	if err != nil {
		return oidc.Person{}, err
	}
	p2 := oidc.Person{
		Email:               a.Email,
		EmailVerified:       true, // accounts exist only once the email link was followed
		PhoneNumber:         a.PhoneNumber(),
		PhoneNumberVerified: a.PhoneVerifiedAt != nil,
		// A landline is given by the person and never verified: no call
		// can be made from here (README, "landline").
		LandlineNumber:         a.LandlineNumber(),
		LandlineNumberVerified: false,
		ProofingLevel:          a.Level(),
		Blocked:                a.Status != account.StatusActive,
	}
	if p.identity == nil {
		return p2, nil
	}
	r, ok, err := p.identity.Record(ctx, accountID)
	if err != nil {
		return oidc.Person{}, err
	}
	if ok {
		p2.NHSNumber, p2.FamilyName, p2.GivenName, p2.BirthDate = r.NHSNumber, r.FamilyName, r.GivenName, r.BirthDate
		p2.GPODSCode, p2.PhoneNumberPDSMatched = r.GPODSCode, r.PhonePDSMatched
		if r.HasGPCredentials() {
			p2.GPIntegration = &oidc.GPIntegrationCredentials{GPUserID: r.GPAccountID, GPLinkageKey: r.GPLinkageKey, GPODSCode: r.GPLinkageODS}
		}
	}
	return p2, nil
}

// loginCheck runs identity's per-login PDS check for the login journey,
// then notes the login on the account (closure of unused accounts counts
// from it).
type loginCheck struct {
	id       *identity.Service
	accounts *account.Service
}

func (l loginCheck) CheckLogin(ctx context.Context, a audit.Actor, accountID string) error {
	err := l.id.CheckLogin(ctx, a, accountID)
	if errors.Is(err, identity.ErrBlocked) {
		return fmt.Errorf("%w: %w", login.ErrAccountBlocked, err)
	}
	if err != nil {
		return err
	}
	return l.accounts.NoteLogin(ctx, accountID)
}

// forgetPerson adapts the provider's ForgetPerson to closure.Forgetter.
type forgetPerson struct{ o *oidc.Server }

func (f forgetPerson) ForgetAccount(ctx context.Context, accountID string) error {
	return f.o.ForgetPerson(ctx, accountID)
}

// limitBody refuses request bodies over small bytes (413), except on the
// upload paths, which may carry up to large. The request's Content-Length
// is checked before the (streamed) body is read; a body without one is
// cut off at the limit.
func limitBody(small, large int, uploads ...string) fiber.Handler {
	return func(c fiber.Ctx) error {
		limit := small
		for _, p := range uploads {
			if c.Path() == p {
				limit = large
			}
		}
		n := c.Request().Header.ContentLength()
		if n > limit || (n < 0 && len(c.Body()) > limit) {
			return fiber.NewError(http.StatusRequestEntityTooLarge, "request body too large")
		}
		return c.Next()
	}
}

// pushActor is the audit actor of what the push service does by itself
// (deliveries, fallbacks): no browser is behind it.
var pushActor = audit.Actor{RequestID: "push"}

// pushAudit records the push service's events in the audit log.
type pushAudit struct {
	log    *audit.Log
	logger *slog.Logger
}

func (p pushAudit) Audit(ctx context.Context, typ string, success bool, accountID string, detail map[string]any) {
	outcome := audit.Success
	if !success {
		outcome = audit.Failure
	}
	if err := p.log.Record(context.WithoutCancel(ctx), pushActor, typ, outcome, accountID, detail); err != nil {
		p.logger.Error("push audit event lost", "type", typ, "account_id", accountID, "err", err)
	}
}

// pushAlerts emails a person who reported a login request as not theirs.
type pushAlerts struct{ accounts *account.Service }

func (p pushAlerts) PushReported(ctx context.Context, a push.Approval) error {
	where := strings.TrimSpace(strings.Join([]string{a.Browser, a.OS}, " on "))
	if a.Browser == "" || a.OS == "" {
		where = strings.TrimSpace(a.Browser + a.OS)
	}
	if where == "" {
		where = "a browser"
	}
	text := fmt.Sprintf("You told us that a login to your idlink account from %s was not you. "+
		"We declined it, and your phone will not be asked to approve logins for the next hour. "+
		"If someone else knows your password, change it now.", where)
	return p.accounts.SendSecurityAlert(ctx, pushActor, a.AccountID, "push_reported", text)
}
