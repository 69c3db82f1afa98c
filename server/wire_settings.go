package server

import (
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/settings"
	"github.com/idlink/idlink/server/web"
)

// registerSettings wires the browser side of registered devices: the
// remembered-browser factor of the login journey, logging in with a
// passkey, the security settings page (with adding passkeys), and
// forgetting remembered browsers when a password is reset.
func (s *Server) registerSettings(p web.Pages, accountPages *account.Handlers) {
	s.Login.RememberBrowsers(s.Devices, login.RememberConfig{Lifetime: s.cfg.RememberDevice, Secure: s.cfg.HTTPS()})
	s.Login.RegisterPasskeyLogin(p, s.FIDO, s.FIDO)
	h := settings.New(settings.Deps{
		Login: s.Login, Accounts: s.Accounts, Devices: s.Devices, FIDO: s.FIDO,
		Sessions: s.Sessions, Renderer: s.Renderer, Audit: s.Audit, Secure: s.cfg.HTTPS(),
		DeviceRemoved: s.Push.DeviceRemoved, Grants: s.OIDC,
	})
	accountPages.SetResetHook(h)
	h.Register(p)
}
