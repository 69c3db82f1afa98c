package server

import (
	"fmt"

	"github.com/idlink/idlink/server/companion"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/ratelimit"
)

// wireCompanion lets /authorize accept the companion app's biometric login
// (fido_auth_response) and mounts the app's API (/app/v1, and
// /fido/authenticate/begin). It runs in build once s.OIDC, s.FIDO and
// s.Devices exist.
func (s *Server) wireCompanion(authorize *oidc.Authorize) error {
	authorize.UseFIDO(s.FIDO)
	api, err := companion.New(companion.Config{Issuer: s.OIDC.Issuer()}, companion.Deps{
		Tokens: s.OIDC, People: s.people, Devices: s.Devices, FIDO: s.FIDO,
		Limiter: ratelimit.New(s.DB, s.now), Audit: s.Audit, Logger: s.log,
		Approvals: s.Push, Stream: s.Push.Hub(),
	})
	if err != nil {
		return fmt.Errorf("companion api: %w", err)
	}
	api.Register(s.App)
	return nil
}
