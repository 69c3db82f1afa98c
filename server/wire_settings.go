package server

import (
	"context"

	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/closure"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/oidc"
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
		DeviceRemoved: s.Push.DeviceRemoved,
		RecentLogin:   s.cfg.RecentLogin, Now: s.now,
		PhoneMatch: s.Identity, Sharing: s.OIDC, Closer: s.Closure,
	})
	accountPages.SetResetHook(h)
	h.Register(p)
	h.RegisterDetails(p)
}

// buildClosure wires deleting accounts and closing unused ones: every
// capability that keeps something about an account forgets it.
func (s *Server) buildClosure() error {
	var err error
	s.Closure, err = closure.New(closure.Config{After: s.cfg.CloseUnusedAfter, Warning: s.cfg.ClosureWarning}, closure.Deps{
		DB: s.DB, Accounts: s.Accounts, Sessions: s.Sessions, Audit: s.Audit, Registry: s.Metrics.Registry,
		Forget: []closure.Forgetter{forgetPerson{s.OIDC}, s.Devices, s.FIDO, s.Push, s.Identity},
		Logger: s.log, Now: s.now,
	})
	return err
}

// forgetPerson adapts the provider's ForgetPerson to closure.Forgetter.
type forgetPerson struct{ o *oidc.Server }

func (f forgetPerson) ForgetAccount(ctx context.Context, accountID string) error {
	return f.o.ForgetPerson(ctx, accountID)
}
