// Package backoffice serves the operators' back office under /admin
// beyond the photo ID queue (which server/identity serves): staff
// management, relying parties and the audit search (admins), and the support desk. Every route passes the one access check,
// identity's Admin.Require (a login made on idlink that proved a passkey
// or the app recently, and a role); every staff action is an audit event
// naming the staff member.
package backoffice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/web"
)

// Gate is the back office's one access check; *identity.Admin implements
// it. Require returns the staff member when they may use the page (any of
// roles); otherwise it has answered the request and ok is false.
type Gate interface {
	Require(c fiber.Ctx, returnTo string, roles ...string) (identity.Staff, bool, error)
}

// StaffStore keeps the back office's members; *identity.Service
// implements it.
type StaffStore interface {
	ListStaff(ctx context.Context) ([]identity.Staff, error)
	StaffMember(ctx context.Context, accountID string) (identity.Staff, bool, error)
	SetRoles(ctx context.Context, a audit.Actor, by, accountID string, roles []string) error
}

// Accounts finds people's accounts; *account.Service implements it.
type Accounts interface {
	Account(ctx context.Context, id string) (account.Account, error)
	AccountByEmail(ctx context.Context, email string) (account.Account, error)
}

// Deps are what the back office uses.
type Deps struct {
	Gate     Gate
	Staff    StaffStore
	Accounts Accounts
	Renderer *web.Renderer
	// Clients registers relying parties (*oidc.Clients).
	Clients ClientRegistry
	// AssertedPairs is IDLINK_ASSERTED_LOGIN_PAIRS: for each relying
	// party, those it may pass its logins to. The pages only show it.
	AssertedPairs map[string][]string
	// Audit searches the audit trail (*audit.Log).
	Audit AuditSearch
	// Support is what the support desk uses.
	Support SupportDeps
}

// BackOffice serves the pages. It is safe for concurrent use.
type BackOffice struct {
	d Deps
	s SupportDeps
}

// New returns the back office over d.
func New(d Deps) *BackOffice {
	if d.Support.Now == nil {
		d.Support.Now = time.Now
	}
	return &BackOffice{d: d, s: d.Support}
}

// Paths of the back office's pages.
const (
	// StaffPath lists the staff and adds a member.
	StaffPath = "/admin/staff"
)

// Register mounts the pages.
func (b *BackOffice) Register(pg web.Pages) {
	pg.Get(StaffPath, b.staffPage)
	pg.Post(StaffPath, b.addStaff)
	pg.Get(StaffPath+"/:id", b.memberPage)
	pg.Post(StaffPath+"/:id", b.changeMember)
	pg.Post(StaffPath+"/:id/remove", b.removeMember)
	pg.Get(ClientsPath, b.clientsPage)
	pg.Get(ClientsPath+"/new", b.newClientPage)
	pg.Post(ClientsPath+"/new", b.createClient)
	pg.Get(ClientsPath+"/:id", b.clientPage)
	pg.Post(ClientsPath+"/:id", b.updateClient)
	pg.Get(AuditPath, b.auditPage)
	pg.Get(AuditPath+".csv", b.auditCSV)
	pg.Get(SupportPath, b.supportSearch)
	pg.Get(SupportPath+"/:id", b.personPage)
	pg.Post(SupportPath+"/signups/:id/resend", b.resendSignup)
	for name, fn := range map[string]supportAction{
		"unlock": b.unlock, "unpause": b.unpause, "end_sessions": b.endSessions, "block": b.block, "unblock": b.unblock,
		"remove_passkey": b.removePasskey, "remove_device": b.removeDevice,
	} {
		pg.Post(SupportPath+"/:id/"+strings.ReplaceAll(name, "_", "-"), b.act(name, fn))
	}
}

// notice is a one-time confirmation for the next back-office page.
const notice = web.Notice("backoffice_notice")

func seeOther(c fiber.Ctx, to string) error { return c.Redirect().Status(http.StatusSeeOther).To(to) }

// roleNames are the roles as pages name them.
var roleNames = map[string]string{
	identity.RoleAdmin:     "Admin: manages staff and relying parties, reads the audit trail",
	identity.RoleIDChecker: "ID checker: reviews photo ID checks",
	identity.RoleSupport:   "Support: helps people with their accounts",
}

// roleOption is one role checkbox.
type roleOption struct {
	Value, Label string
	Checked      bool
}

func roleOptions(checked []string) []roleOption {
	out := make([]roleOption, 0, len(identity.Roles))
	for _, r := range identity.Roles {
		out = append(out, roleOption{Value: r, Label: roleNames[r], Checked: slices.Contains(checked, r)})
	}
	return out
}

// formRoles reads the role checkboxes, keeping only known roles.
func formRoles(c fiber.Ctx) []string {
	var out []string
	for _, r := range identity.Roles {
		if c.FormValue("role_"+r) == r {
			out = append(out, r)
		}
	}
	return out
}

// ---- staff ----

// staffRow is one member in backoffice_staff.html.
type staffRow struct {
	AccountID string
	Email     string
	Roles     string
	You       bool
}

// staffData is what backoffice_staff.html shows.
type staffData struct {
	Rows  []staffRow
	Roles []roleOption
}

func (b *BackOffice) staffPage(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, StaffPath, identity.RoleAdmin)
	if !ok {
		return err
	}
	return b.renderStaff(c, m, web.View{Notice: notice.Take(c), Values: map[string]string{}}, nil)
}

func (b *BackOffice) renderStaff(c fiber.Ctx, m identity.Staff, v web.View, checked []string) error {
	members, err := b.d.Staff.ListStaff(c.Context())
	if err != nil {
		return err
	}
	data := staffData{Roles: roleOptions(checked)}
	for _, s := range members {
		row := staffRow{AccountID: s.AccountID, Email: "(account deleted)", Roles: rolesText(s.Roles), You: s.AccountID == m.AccountID}
		if a, err := b.d.Accounts.Account(c.Context(), s.AccountID); err == nil {
			row.Email = a.Email
		} else if !errors.Is(err, account.ErrNotFound) {
			return err
		}
		data.Rows = append(data.Rows, row)
	}
	v.Title, v.Data = "Staff", data
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return b.d.Renderer.Render(c, status, "backoffice_staff", v)
}

// rolesText names roles for a table cell.
func rolesText(roles []string) string {
	names := map[string]string{identity.RoleAdmin: "Admin", identity.RoleIDChecker: "ID checker", identity.RoleSupport: "Support"}
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		out = append(out, names[r])
	}
	return strings.Join(out, ", ")
}

func (b *BackOffice) addStaff(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, StaffPath, identity.RoleAdmin)
	if !ok {
		return err
	}
	email := strings.TrimSpace(c.FormValue("email"))
	roles := formRoles(c)
	v := web.View{Values: map[string]string{"email": email}}
	var acct account.Account
	if email == "" {
		v.Errors.Add("email", "Enter the email address of the person's idlink account")
	} else {
		acct, err = b.d.Accounts.AccountByEmail(c.Context(), email)
		switch {
		case errors.Is(err, account.ErrNotFound):
			v.Errors.Add("email", "No idlink account has this email address. The person must create an account first")
		case err != nil:
			return err
		default:
			if _, isStaff, err := b.d.Staff.StaffMember(c.Context(), acct.ID); err != nil {
				return err
			} else if isStaff {
				v.Errors.Add("email", "This person is already staff. Choose them in the list to change their roles")
			}
		}
	}
	if len(roles) == 0 {
		v.Errors.Add(rolesField, "Choose at least one role")
	}
	if len(v.Errors) > 0 {
		return b.renderStaff(c, m, v, roles)
	}
	if err := b.d.Staff.SetRoles(c.Context(), web.Actor(c), m.AccountID, acct.ID, roles); err != nil {
		return fmt.Errorf("add staff: %w", err)
	}
	notice.Set(c, acct.Email+" is now staff: "+rolesText(roles)+".")
	return seeOther(c, StaffPath)
}

// memberData is what backoffice_member.html shows.
type memberData struct {
	AccountID string
	Email     string
	Roles     []roleOption
	You       bool
}

// member returns the staff member the page is about, or answers 404.
func (b *BackOffice) member(c fiber.Ctx) (identity.Staff, account.Account, bool, error) {
	s, ok, err := b.d.Staff.StaffMember(c.Context(), c.Params("id"))
	if err != nil {
		return identity.Staff{}, account.Account{}, false, err
	}
	if !ok {
		return identity.Staff{}, account.Account{}, false, b.d.Renderer.ErrorPage(c, http.StatusNotFound, "Staff member not found",
			"There is no member of staff at this address. Go back to the staff list and choose one.")
	}
	a, err := b.d.Accounts.Account(c.Context(), s.AccountID)
	if err != nil && !errors.Is(err, account.ErrNotFound) {
		return identity.Staff{}, account.Account{}, false, err
	}
	if err != nil {
		a.Email = "(account deleted)"
	}
	return s, a, true, nil
}

func (b *BackOffice) renderMember(c fiber.Ctx, m, s identity.Staff, email string, v web.View, checked []string) error {
	v.Title, v.BackLink = "Change "+email+"'s roles", StaffPath
	v.Data = memberData{AccountID: s.AccountID, Email: email, Roles: roleOptions(checked), You: m.AccountID == s.AccountID}
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return b.d.Renderer.Render(c, status, "backoffice_member", v)
}

func (b *BackOffice) memberPage(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, StaffPath+"/"+c.Params("id"), identity.RoleAdmin)
	if !ok {
		return err
	}
	s, a, ok, err := b.member(c)
	if !ok {
		return err
	}
	return b.renderMember(c, m, s, a.Email, web.View{}, s.Roles)
}

func (b *BackOffice) changeMember(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, StaffPath+"/"+c.Params("id"), identity.RoleAdmin)
	if !ok {
		return err
	}
	s, a, ok, err := b.member(c)
	if !ok {
		return err
	}
	roles := formRoles(c)
	var v web.View
	if len(roles) == 0 {
		v.Errors.Add(rolesField, "Choose at least one role. To take every role away, remove the member instead")
	}
	if s.AccountID == m.AccountID && !slices.Contains(roles, identity.RoleAdmin) {
		v.Errors.Add(rolesField, "You cannot take away your own admin role. Ask another admin")
	}
	if len(v.Errors) > 0 {
		return b.renderMember(c, m, s, a.Email, v, roles)
	}
	if err := b.d.Staff.SetRoles(c.Context(), web.Actor(c), m.AccountID, s.AccountID, roles); err != nil {
		return fmt.Errorf("change staff roles: %w", err)
	}
	notice.Set(c, "The roles of "+a.Email+" are now: "+rolesText(roles)+".")
	return seeOther(c, StaffPath)
}

func (b *BackOffice) removeMember(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, StaffPath+"/"+c.Params("id"), identity.RoleAdmin)
	if !ok {
		return err
	}
	s, a, ok, err := b.member(c)
	if !ok {
		return err
	}
	if s.AccountID == m.AccountID {
		var v web.View
		v.Errors.Add("remove", "You cannot remove yourself. Ask another admin")
		return b.renderMember(c, m, s, a.Email, v, s.Roles)
	}
	if err := b.d.Staff.SetRoles(c.Context(), web.Actor(c), m.AccountID, s.AccountID, nil); err != nil {
		return fmt.Errorf("remove staff: %w", err)
	}
	notice.Set(c, a.Email+" is no longer staff.")
	return seeOther(c, StaffPath)
}

// rolesField is where errors about the role checkboxes link to (the first
// checkbox, admin).
const rolesField = "role_" + identity.RoleAdmin
