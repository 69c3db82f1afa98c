package settings

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/names"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/web"
)

// renameData is what settings_rename.html shows.
type renameData struct {
	Action string // where the form posts
	ID     string
	Hint   string
}

// nameError checks a new name as the stores will, and says what is wrong.
func nameError(name string, max int) string {
	_, err := names.Clean(name, max)
	switch {
	case errors.Is(err, names.ErrEmpty):
		return "Enter a name"
	case errors.Is(err, names.ErrTooLong):
		return fmt.Sprintf("The name must be %d characters or fewer", max)
	case err != nil:
		return "The name must only include letters, numbers, spaces and punctuation"
	}
	return ""
}

// ---- passkeys ----

// ownPasskey finds one of the account's passkeys by its base64url id.
func (h *Handlers) ownPasskey(c fiber.Ctx, acct account.Account, raw string) (fido.Credential, bool, error) {
	id, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(id) == 0 {
		return fido.Credential{}, false, nil
	}
	creds, err := h.d.FIDO.ListCredentials(c.Context(), acct.ID)
	if err != nil {
		return fido.Credential{}, false, err
	}
	for _, cr := range creds {
		if cr.Kind == fido.KindPasskey && bytes.Equal(cr.ID, id) {
			return cr, true, nil
		}
	}
	return fido.Credential{}, false, nil
}

func (h *Handlers) renameView(action, id, hint string) web.View {
	return web.View{Title: "Change the name", BackLink: PagePath, Data: renameData{Action: action, ID: id, Hint: hint}}
}

func (h *Handlers) renamePasskeyPage(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, false)
	if !ok {
		return err
	}
	cr, found, err := h.ownPasskey(c, acct, c.Query("id"))
	if err != nil {
		return err
	}
	if !found {
		return h.refuse(c, acct, "passkeys", "We could not find that passkey. It may have been removed.")
	}
	v := h.renameView(PagePath+"/passkeys/rename", encodeID(cr.ID), "For example, the phone or security key it is on.")
	v.Values = map[string]string{"name": cr.Name}
	return h.d.Renderer.Render(c, http.StatusOK, "settings_rename", v)
}

func (h *Handlers) renamePasskey(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, true)
	if !ok {
		return err
	}
	rawID, name := c.FormValue("id"), c.FormValue("name")
	cr, found, err := h.ownPasskey(c, acct, rawID)
	if err != nil {
		return err
	}
	if !found {
		return h.refuse(c, acct, "passkeys", "We could not find that passkey. It may have been removed.")
	}
	if msg := nameError(name, fido.MaxNameLength); msg != "" {
		v := h.renameView(PagePath+"/passkeys/rename", rawID, "For example, the phone or security key it is on.")
		v.Values = map[string]string{"name": name}
		v.Errors.Add("name", msg)
		return h.d.Renderer.Render(c, http.StatusUnprocessableEntity, "settings_rename", v)
	}
	err = h.d.FIDO.RenameCredential(c.Context(), acct.ID, cr.ID, name)
	if errors.Is(err, fido.ErrUnknownCredential) {
		return h.refuse(c, acct, "passkeys", "We could not find that passkey. It may have been removed.")
	}
	if err != nil {
		return err
	}
	if err := h.record(c, "passkey.renamed", audit.Success, acct.ID, map[string]any{"credential": rawID}); err != nil {
		return err
	}
	settingsNotice.Set(c, "The passkey has been renamed.")
	return redirectTo(c, PagePath)
}

func (h *Handlers) removePasskey(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PagePath)
	if !ok {
		return err
	}
	rawID := c.FormValue("id")
	cr, found, err := h.ownPasskey(c, acct, rawID)
	if err != nil {
		return err
	}
	if found {
		err = h.d.FIDO.RemoveCredential(c.Context(), acct.ID, cr.ID)
	}
	if !found || errors.Is(err, fido.ErrUnknownCredential) {
		return h.refuse(c, acct, "passkeys", "We could not find that passkey. It may have been removed already.")
	}
	if err != nil {
		return err
	}
	if err := h.record(c, "passkey.removed", audit.Success, acct.ID, map[string]any{"credential": rawID, "name": cr.Name}); err != nil {
		return err
	}
	settingsNotice.Set(c, "The passkey has been removed. It can no longer be used to log in.")
	return redirectTo(c, PagePath)
}

// ---- companion-app devices ----

func (h *Handlers) ownDevice(c fiber.Ctx, acct account.Account, id string) (device.Device, bool, error) {
	if id == "" {
		return device.Device{}, false, nil
	}
	ds, err := h.d.Devices.ListForAccount(c.Context(), acct.ID)
	if err != nil {
		return device.Device{}, false, err
	}
	for _, d := range ds {
		if d.ID == id {
			return d, true, nil
		}
	}
	return device.Device{}, false, nil
}

func (h *Handlers) renameDevicePage(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, false)
	if !ok {
		return err
	}
	d, found, err := h.ownDevice(c, acct, c.Query("id"))
	if err != nil {
		return err
	}
	if !found {
		return h.refuse(c, acct, "devices", "We could not find that device. It may have been removed.")
	}
	v := h.renameView(PagePath+"/devices/rename", d.ID, "For example, Sam's phone.")
	v.Values = map[string]string{"name": d.Name}
	return h.d.Renderer.Render(c, http.StatusOK, "settings_rename", v)
}

func (h *Handlers) renameDevice(c fiber.Ctx) error {
	acct, ok, err := h.signedIn(c, true)
	if !ok {
		return err
	}
	id, name := c.FormValue("id"), c.FormValue("name")
	if _, found, err := h.ownDevice(c, acct, id); err != nil {
		return err
	} else if !found {
		return h.refuse(c, acct, "devices", "We could not find that device. It may have been removed.")
	}
	if msg := nameError(name, device.MaxNameLength); msg != "" {
		v := h.renameView(PagePath+"/devices/rename", id, "For example, Sam's phone.")
		v.Values = map[string]string{"name": name}
		v.Errors.Add("name", msg)
		return h.d.Renderer.Render(c, http.StatusUnprocessableEntity, "settings_rename", v)
	}
	err = h.d.Devices.Rename(c.Context(), acct.ID, id, name)
	if errors.Is(err, device.ErrNotFound) || errors.Is(err, device.ErrRemoved) {
		return h.refuse(c, acct, "devices", "We could not find that device. It may have been removed.")
	}
	if err != nil {
		return err
	}
	if err := h.record(c, "device.renamed", audit.Success, acct.ID, map[string]any{"device": id}); err != nil {
		return err
	}
	settingsNotice.Set(c, "The device has been renamed.")
	return redirectTo(c, PagePath)
}

func (h *Handlers) removeDevice(c fiber.Ctx) error {
	acct, ok, err := h.recentLogin(c, PagePath)
	if !ok {
		return err
	}
	id := c.FormValue("id")
	err = h.removeApp(c.Context(), web.Actor(c), acct.ID, id, "settings")
	if id == "" || errors.Is(err, device.ErrNotFound) || errors.Is(err, device.ErrRemoved) || errors.Is(err, device.ErrInvalid) {
		return h.refuse(c, acct, "devices", "We could not find that device. It may have been removed already.")
	}
	if err != nil {
		return err
	}
	settingsNotice.Set(c, "The device has been removed. It can no longer be used to log in or approve anything.")
	return redirectTo(c, PagePath)
}

// ---- adding a passkey (JSON, for passkey.js) ----

// registrationKey is the session key of the pending passkey registration
// ceremony's id.
const registrationKey = "passkey_registration"

// jsonSignedIn is signedIn for the JSON endpoints.
func (h *Handlers) jsonSignedIn(c fiber.Ctx) (account.Account, bool, error) {
	a, ok := h.d.Login.Current(c)
	if !ok || !strong(a) {
		return account.Account{}, false, login.JSONError(c, http.StatusForbidden, "second_factor_required",
			"To add a passkey, log in again with your password and a security code.")
	}
	if !h.recent(a) {
		return account.Account{}, false, login.JSONError(c, http.StatusForbidden, "recent_login_required",
			"To add a passkey, reload this page and log in again first.")
	}
	acct, err := h.d.Accounts.Account(c.Context(), a.AccountID)
	if err != nil {
		return account.Account{}, false, fmt.Errorf("settings: %w", err)
	}
	return acct, true, nil
}

func (h *Handlers) passkeyBegin(c fiber.Ctx) error {
	acct, ok, err := h.jsonSignedIn(c)
	if !ok {
		return err
	}
	id, options, err := h.d.FIDO.BeginRegistration(c.Context(), fido.User{AccountID: acct.ID, Name: acct.Email}, fido.KindPasskey)
	if err != nil {
		return fmt.Errorf("begin passkey registration: %w", err)
	}
	web.Sess(c).Put(registrationKey, id)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(options)
}

// finishBody is what passkey.js posts to finish adding a passkey.
type finishBody struct {
	Credential json.RawMessage `json:"credential"`
	Name       string          `json:"name"`
}

// registrationRefusal is how a refused passkey registration is answered,
// always with 400 Bad Request.
type registrationRefusal struct{ code, message string }

// registrationRefusals answers fido's kinds of refusal; any other error is
// a failure of the service.
var registrationRefusals = map[fido.Kind]registrationRefusal{
	fido.KindCeremonyNotFound:      {"ceremony_expired", "This request has expired or has already been used. Try adding the passkey again."},
	fido.KindCeremonyExpired:       {"ceremony_expired", "This request has expired. Try adding the passkey again."},
	fido.KindMalformed:             {"malformed", "Your browser sent a passkey we could not read. Try again."},
	fido.KindUserVerification:      {"user_verification_required", "Your device did not check it was you (with a fingerprint, face or PIN). Try again with a passkey that can."},
	fido.KindCredentialExists:      {"credential_exists", "This passkey is already registered."},
	fido.KindAAGUIDNotAllowed:      {"authenticator_not_allowed", "This type of passkey cannot be used with this service. Try another device or security key."},
	fido.KindBackupEligibleRefused: {"synced_passkey_refused", "Passkeys that are synced between devices cannot be used with this service. Try a security key."},
	fido.KindInvalid:               {"invalid_name", "Enter a name of 64 characters or fewer."},
	fido.KindChallengeMismatch:     {"verification_failed", "We could not check your passkey. Try again."},
	fido.KindOrigin:                {"verification_failed", "We could not check your passkey. Try again."},
	fido.KindRPID:                  {"verification_failed", "We could not check your passkey. Try again."},
	fido.KindSignature:             {"verification_failed", "We could not check your passkey. Try again."},
	fido.KindVerification:          {"verification_failed", "We could not check your passkey. Try again."},
}

func (h *Handlers) passkeyFinish(c fiber.Ctx) error {
	acct, ok, err := h.jsonSignedIn(c)
	if !ok {
		return err
	}
	var body finishBody
	if err := json.Unmarshal(c.Body(), &body); err != nil || len(body.Credential) == 0 {
		return login.JSONError(c, http.StatusBadRequest, "malformed", "Your browser sent a passkey we could not read. Try again.")
	}
	if strings.TrimSpace(body.Name) != "" {
		if msg := nameError(body.Name, fido.MaxNameLength); msg != "" {
			return login.JSONError(c, http.StatusBadRequest, "invalid_name", msg)
		}
	}
	s := web.Sess(c)
	var ceremonyID string
	if !s.Get(registrationKey, &ceremonyID) || ceremonyID == "" {
		return login.JSONError(c, http.StatusBadRequest, "ceremony_expired", "This request has expired or has already been used. Try adding the passkey again.")
	}
	s.Delete(registrationKey)
	cred, err := h.d.FIDO.FinishRegistration(c.Context(), acct.ID, ceremonyID, []byte(body.Credential), body.Name, "")
	if err != nil {
		r, refused := registrationRefusals[fido.Classify(err)]
		if !refused {
			return err
		}
		if aerr := h.record(c, "passkey.added", audit.Failure, acct.ID, map[string]any{"reason": r.code, "error": err.Error()}); aerr != nil {
			return aerr
		}
		return login.JSONError(c, http.StatusBadRequest, r.code, r.message)
	}
	if err := h.record(c, "passkey.added", audit.Success, acct.ID, map[string]any{"credential": encodeID(cred.ID), "name": cred.Name}); err != nil {
		return err
	}
	if err := h.d.Accounts.SendNotice(c.Context(), web.Actor(c), acct.ID, account.NoticePasskeyAdded,
		"A passkey was added to your idlink account: it can be used to log in"); err != nil {
		return err
	}
	settingsNotice.Set(c, "Your passkey has been added. You can use it to log in.")
	return c.JSON(fiber.Map{"redirect": PagePath})
}
