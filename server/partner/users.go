package partner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/identity/nhsnumber"
	"github.com/idlink/idlink/server/oidc"
)

// maxEmailLength bounds the email query parameter (RFC 5321's path limit).
const maxEmailLength = 254

// User is one account the users endpoint returns.
type User struct {
	// Sub is the person's subject identifier, the sub of the partner's ID
	// tokens.
	Sub string `json:"sub"`
	// AccountStatus is "active" or "blocked" (a blocked account cannot
	// log in, e.g. PDS records a death).
	AccountStatus string `json:"account_status"`
	// IdentityProofingLevel is "P0", "P5" or "P9".
	IdentityProofingLevel string `json:"identity_proofing_level"`
}

// UsersResponse is the users endpoint's answer: every matching account,
// none when nobody matches.
type UsersResponse struct {
	Users []User `json:"users"`
}

// UsersQuery is a users endpoint search: an NHS number, an email, or both
// (both must then belong to the same account).
type UsersQuery struct {
	NHSNumber nhsnumber.Number
	Email     string
}

// Refusals of ParseUsersQuery.
var (
	// ErrInvalidSearch: neither nhs_number nor email, or an email that is
	// not an address.
	ErrInvalidSearch = errors.New("invalid users search")
	// ErrInvalidNHSNumber: nhs_number is not a valid NHS number.
	ErrInvalidNHSNumber = errors.New("nhs_number is not a valid NHS number")
)

// ParseUsersQuery checks the query parameters of the users endpoint.
// Errors wrap ErrInvalidSearch or ErrInvalidNHSNumber.
func ParseUsersQuery(nhs, email string) (UsersQuery, error) {
	var q UsersQuery
	nhs, email = strings.TrimSpace(nhs), strings.TrimSpace(email)
	if nhs == "" && email == "" {
		return q, fmt.Errorf("%w: nhs_number or email is required", ErrInvalidSearch)
	}
	if nhs != "" {
		n, err := nhsnumber.Parse(nhs)
		if err != nil {
			return q, fmt.Errorf("%w: %w", ErrInvalidNHSNumber, err)
		}
		q.NHSNumber = n
	}
	if email != "" {
		if len(email) > maxEmailLength || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n") {
			return q, fmt.Errorf("%w: email is not an email address", ErrInvalidSearch)
		}
		q.Email = account.NormalizeEmail(email)
	}
	return q, nil
}

// handleUsers serves GET /partner/v2/users?nhs_number=…&email=….
func (a *API) handleUsers(c fiber.Ctx) error {
	tok, err := a.authorize(c, oidc.ScopeUsersEndpoint, "users", a.cfg.UsersPerMinute)
	if err != nil {
		return a.answer(c, err)
	}
	q, err := ParseUsersQuery(c.Query("nhs_number"), c.Query("email"))
	if err != nil {
		a.record(c.Context(), actor(c), "partner.users_lookup", false, "", map[string]any{"client_id": tok.ClientID, "reason": "invalid_request"})
		code := CodeInvalidRequest
		if errors.Is(err, ErrInvalidNHSNumber) {
			code = CodeInvalidNHSNumber
		}
		return a.answer(c, fail(http.StatusBadRequest, code, "%s", err.Error()))
	}
	ids, err := a.lookup(c.Context(), q)
	if err != nil {
		return a.answer(c, err)
	}
	out := UsersResponse{Users: []User{}}
	for _, id := range ids {
		u, ok, err := a.user(c.Context(), id)
		if err != nil {
			return a.answer(c, err)
		}
		if ok {
			out.Users = append(out.Users, u)
		}
	}
	by := "nhs_number"
	switch {
	case q.Email != "" && !q.NHSNumber.IsZero():
		by = "nhs_number_and_email"
	case q.Email != "":
		by = "email"
	}
	found := ""
	if len(ids) == 1 {
		found = ids[0]
	}
	a.record(c.Context(), actor(c), "partner.users_lookup", true, found, map[string]any{"client_id": tok.ClientID, "by": by, "results": len(out.Users)})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

// lookup returns the ids of the accounts matching q.
func (a *API) lookup(ctx context.Context, q UsersQuery) ([]string, error) {
	var byNHS, byEmail string
	if !q.NHSNumber.IsZero() {
		id, ok, err := a.accountByNHSNumber(ctx, q.NHSNumber.String())
		if err != nil || !ok {
			return nil, err
		}
		byNHS = id
	}
	if q.Email != "" {
		acct, err := a.d.Accounts.AccountByEmail(ctx, q.Email)
		if errors.Is(err, account.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("users lookup: %w", err)
		}
		byEmail = acct.ID
	}
	switch {
	case byNHS != "" && byEmail != "" && byNHS != byEmail:
		return nil, nil
	case byNHS != "":
		return []string{byNHS}, nil
	default:
		return []string{byEmail}, nil
	}
}

// user describes one account; ok is false when it has gone.
func (a *API) user(ctx context.Context, accountID string) (User, bool, error) {
	acct, err := a.d.Accounts.Account(ctx, accountID)
	if errors.Is(err, account.ErrNotFound) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("users lookup: %w", err)
	}
	sub, err := a.d.Subjects.SubjectFor(ctx, accountID)
	if err != nil {
		return User{}, false, fmt.Errorf("users lookup: %w", err)
	}
	return User{Sub: sub, AccountStatus: acct.Status, IdentityProofingLevel: acct.Level().String()}, true, nil
}
