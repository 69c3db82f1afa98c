package backoffice

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/web"
)

// This file is the relying parties pages (role admin): list, create and
// edit OIDC clients. Validation is the oidc package's own (the admin API
// and the CLI use the same Clients methods); these pages only turn its
// field errors into form errors.

// ClientRegistry registers relying parties; *oidc.Clients implements it.
type ClientRegistry interface {
	List(ctx context.Context) ([]*oidc.Client, error)
	Get(ctx context.Context, id string) (*oidc.Client, error)
	Create(ctx context.Context, c oidc.Client) (*oidc.Client, error)
	Update(ctx context.Context, c oidc.Client) (*oidc.Client, error)
}

// ClientsPath lists the relying parties.
const ClientsPath = "/admin/clients"

// maxKeyFile bounds an uploaded public key file.
const maxKeyFile = 16 << 10

// clientRow is one relying party in the list.
type clientRow struct {
	ID, Name, Redirects string
}

func (b *BackOffice) clientsPage(c fiber.Ctx) error {
	_, ok, err := b.d.Gate.Require(c, ClientsPath, identity.RoleAdmin)
	if !ok {
		return err
	}
	cs, err := b.d.Clients.List(c.Context())
	if err != nil {
		return err
	}
	rows := make([]clientRow, 0, len(cs))
	for _, cl := range cs {
		rows = append(rows, clientRow{ID: cl.ID, Name: cl.Name, Redirects: strings.Join(cl.RedirectURIs, ", ")})
	}
	return b.d.Renderer.Render(c, http.StatusOK, "backoffice_clients", web.View{Title: "Relying parties", Notice: notice.Take(c), Data: rows})
}

// clientFormData is what backoffice_client.html shows.
type clientFormData struct {
	New         bool
	Action      string
	Fingerprint string
	// Activity is what the audit trail says of an existing client.
	Activity *clientActivity
	// PassesTo and TakesFrom are the relying parties this one may pass its
	// logins to, and receive logins from (asserted_login_identity).
	PassesTo, TakesFrom []string
}

// clientActivity is a relying party's recent use, from the audit trail.
type clientActivity struct {
	// Codes is how many logins were sent back to the service
	// (authorization codes issued) in the last ActivityDays days.
	Codes, Days int
	// Errors are its most recent refused requests.
	Errors []auditRow
}

// Client activity shown.
const (
	clientActivityDays = 7
	clientErrorsShown  = 10
)

func (b *BackOffice) clientActivity(ctx context.Context, id string) (*clientActivity, error) {
	since := b.s.Now().UTC().AddDate(0, 0, -clientActivityDays)
	n, err := b.d.Audit.CountMatching(ctx, audit.Filter{Type: "authorize.code_issued", ClientID: id, From: since})
	if err != nil {
		return nil, err
	}
	evs, err := b.d.Audit.Search(ctx, audit.Filter{ClientID: id, Outcome: audit.Failure}, nil, clientErrorsShown)
	if err != nil {
		return nil, err
	}
	a := &clientActivity{Codes: n, Days: clientActivityDays}
	for _, ev := range evs {
		a.Errors = append(a.Errors, auditRowOf(ev))
	}
	return a, nil
}

// clientValues fills the form's values from a client.
func clientValues(cl *oidc.Client) map[string]string {
	v := map[string]string{
		"client_id": cl.ID, "name": cl.Name, "redirect_uris": strings.Join(cl.RedirectURIs, "\n"),
		"scopes": strings.Join(cl.Scopes, " "), "vtr": strings.Join(cl.VTR, " "), "default_vtr": strings.Join(cl.DefaultVTR, " "),
		"public_key_pem": cl.PublicKeyPEM, "id_token_claims": cl.IDTokenClaims,
	}
	if cl.RefreshTokens {
		v["refresh_tokens"] = "yes"
	}
	if cl.Public {
		v["public"] = "yes"
	}
	return v
}

// fingerprint is the SHA-256 of the key's DER, in hex pairs; "" when the
// PEM does not parse.
func fingerprint(pemText string) string {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return ""
	}
	sum := sha256.Sum256(block.Bytes)
	parts := make([]string, len(sum))
	for i, x := range sum {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

func (b *BackOffice) renderClient(c fiber.Ctx, v web.View, data clientFormData) error {
	if data.New {
		v.Title = "Register a relying party"
	} else {
		v.Title = "Change " + v.Values["name"]
	}
	data.Fingerprint = fingerprint(v.Values["public_key_pem"])
	v.BackLink, v.Data = ClientsPath, data
	status := http.StatusOK
	if len(v.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return b.d.Renderer.Render(c, status, "backoffice_client", v)
}

func (b *BackOffice) newClientPage(c fiber.Ctx) error {
	_, ok, err := b.d.Gate.Require(c, ClientsPath+"/new", identity.RoleAdmin)
	if !ok {
		return err
	}
	return b.renderClient(c, web.View{Values: map[string]string{"scopes": "openid"}}, clientFormData{New: true, Action: ClientsPath + "/new"})
}

func (b *BackOffice) clientPage(c fiber.Ctx) error {
	id := c.Params("id")
	_, ok, err := b.d.Gate.Require(c, ClientsPath+"/"+id, identity.RoleAdmin)
	if !ok {
		return err
	}
	cl, err := b.d.Clients.Get(c.Context(), id)
	if errors.Is(err, oidc.ErrClientNotFound) {
		return b.clientNotFound(c)
	}
	if err != nil {
		return err
	}
	act, err := b.clientActivity(c.Context(), id)
	if err != nil {
		return err
	}
	data := clientFormData{Action: ClientsPath + "/" + id, Activity: act, PassesTo: b.d.AssertedPairs[id]}
	for from, tos := range b.d.AssertedPairs {
		if slices.Contains(tos, id) {
			data.TakesFrom = append(data.TakesFrom, from)
		}
	}
	slices.Sort(data.TakesFrom)
	return b.renderClient(c, web.View{Values: clientValues(cl), Notice: notice.Take(c)}, data)
}

func (b *BackOffice) clientNotFound(c fiber.Ctx) error {
	return b.d.Renderer.ErrorPage(c, http.StatusNotFound, "Relying party not found",
		"There is no relying party at this address. Go back to the list and choose one.")
}

// clientFields are the form's inputs, in the order their errors are
// listed; oidc's field names are the same.
var clientFields = map[string]string{
	"client_id": "client_id", "name": "name", "redirect_uris": "redirect_uris", "scopes": "scopes",
	"vtr": "vtr", "default_vtr": "default_vtr", "public_key_pem": "public_key_pem", "id_token_claims": "id_token_claims",
}

// readClient reads the form into cl and v's values; it adds the errors it
// can see without the oidc rules (nothing entered, an unreadable upload).
func readClient(c fiber.Ctx, cl *oidc.Client, v *web.View) {
	get := func(name string) string {
		s := strings.TrimSpace(strings.ReplaceAll(c.FormValue(name), "\r\n", "\n"))
		v.Values[name] = s
		return s
	}
	cl.Name = get("name")
	cl.RedirectURIs = strings.Fields(get("redirect_uris"))
	cl.Scopes = strings.Fields(get("scopes"))
	cl.VTR = strings.Fields(get("vtr"))
	cl.DefaultVTR = strings.Fields(get("default_vtr"))
	cl.IDTokenClaims = get("id_token_claims")
	cl.PublicKeyPEM = get("public_key_pem")
	if fh, err := c.FormFile("public_key_file"); err == nil && fh.Size > 0 {
		if fh.Size > maxKeyFile {
			v.Errors.Add("public_key_pem", fmt.Sprintf("The key file must be %d KB or smaller", maxKeyFile>>10))
		} else if f, err := fh.Open(); err == nil {
			raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
			_ = f.Close()
			if err != nil {
				v.Errors.Add("public_key_pem", "The key file could not be read. Upload it again")
			} else {
				cl.PublicKeyPEM = strings.TrimSpace(string(raw))
				v.Values["public_key_pem"] = cl.PublicKeyPEM
			}
		}
	}
	cl.RefreshTokens = c.FormValue("refresh_tokens") == "yes"
	cl.Public = c.FormValue("public") == "yes"
	if cl.RefreshTokens {
		v.Values["refresh_tokens"] = "yes"
	}
	if cl.Public {
		v.Values["public"] = "yes"
	}
	if cl.Name == "" {
		v.Errors.Add("name", "Enter the name people see for the service")
	}
	if len(cl.RedirectURIs) == 0 {
		v.Errors.Add("redirect_uris", "Enter at least one redirect URI")
	}
	if !cl.Public && cl.PublicKeyPEM == "" {
		v.Errors.Add("public_key_pem", "Upload or paste the service's RSA public key, or mark it as a public client")
	}
}

// clientError turns a Clients error into a form error; ok is false for
// errors that are not about the form.
func clientError(err error, v *web.View) bool {
	var fe *oidc.ClientFieldError
	switch {
	case errors.As(err, &fe):
		field, known := clientFields[fe.Field]
		if !known {
			field = "name"
		}
		if v.Errors.For(field) == "" {
			v.Errors.Add(field, "Check this: "+fe.Reason)
		}
		return true
	case errors.Is(err, oidc.ErrClientExists):
		v.Errors.Add("client_id", "This client ID is already registered. Choose another, or leave it empty for a random one")
		return true
	}
	return false
}

func (b *BackOffice) createClient(c fiber.Ctx) error {
	m, ok, err := b.d.Gate.Require(c, ClientsPath+"/new", identity.RoleAdmin)
	if !ok {
		return err
	}
	v := web.View{Values: map[string]string{}}
	cl := oidc.Client{ID: strings.TrimSpace(c.FormValue("client_id"))}
	v.Values["client_id"] = cl.ID
	readClient(c, &cl, &v)
	data := clientFormData{New: true, Action: ClientsPath + "/new"}
	if len(v.Errors) > 0 {
		return b.renderClient(c, v, data)
	}
	created, err := b.d.Clients.Create(c.Context(), cl)
	if err != nil {
		if clientError(err, &v) {
			return b.renderClient(c, v, data)
		}
		return err
	}
	if err := b.s.Activity.Record(c.Context(), web.Actor(c), "oidc.client_create", audit.Success, "",
		map[string]any{"client_id": created.ID, "staff": m.AccountID}); err != nil {
		return err
	}
	notice.Set(c, "The relying party "+created.Name+" is registered with the client ID "+created.ID+".")
	return seeOther(c, ClientsPath+"/"+created.ID)
}

func (b *BackOffice) updateClient(c fiber.Ctx) error {
	id := c.Params("id")
	m, ok, err := b.d.Gate.Require(c, ClientsPath+"/"+id, identity.RoleAdmin)
	if !ok {
		return err
	}
	cl, err := b.d.Clients.Get(c.Context(), id)
	if errors.Is(err, oidc.ErrClientNotFound) {
		return b.clientNotFound(c)
	}
	if err != nil {
		return err
	}
	v := web.View{Values: map[string]string{"client_id": id}}
	readClient(c, cl, &v)
	data := clientFormData{Action: ClientsPath + "/" + id}
	if len(v.Errors) > 0 {
		return b.renderClient(c, v, data)
	}
	updated, err := b.d.Clients.Update(c.Context(), *cl)
	if err != nil {
		if clientError(err, &v) {
			return b.renderClient(c, v, data)
		}
		return err
	}
	if err := b.s.Activity.Record(c.Context(), web.Actor(c), "oidc.client_update", audit.Success, "",
		map[string]any{"client_id": updated.ID, "staff": m.AccountID}); err != nil {
		return err
	}
	notice.Set(c, "The changes to "+updated.Name+" are saved.")
	return seeOther(c, ClientsPath+"/"+updated.ID)
}
