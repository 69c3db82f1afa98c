package server

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/companion"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/web"
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
		Approvals: s.Push, Stream: s.Push.Hub(), Enrolments: enrolmentAlerts{s.Accounts}, Now: s.now,
	})
	if err != nil {
		return fmt.Errorf("companion api: %w", err)
	}
	api.Register(s.App)
	if s.cfg.StreamAddr != "" {
		s.StreamApp = fiber.New(fiber.Config{
			AppName: "idlink-stream", ErrorHandler: s.handleError,
			// The buffer holds the upgrade request (a device JWT and a few
			// headers). ReduceMemoryUsage returns it to the pool once the
			// request is read, so a hijacked socket keeps no HTTP buffer
			// at all (measured: 16 KiB less per idle socket).
			ReadBufferSize: streamReadBuffer, WriteBufferSize: streamReadBuffer, ReduceMemoryUsage: true,
			ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		})
		s.StreamApp.Use(s.clients.Middleware())
		s.StreamApp.Use(s.observe)
		s.StreamApp.Use(web.SecurityHeaders(s.cfg.HTTPS()))
		s.StreamApp.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
		api.RegisterStream(s.StreamApp)
	}
	return nil
}

// streamReadBuffer is the stream listener's HTTP read buffer: an upgrade
// request with a device JWT fits in well under 4 KiB.
const streamReadBuffer = 4 << 10

// enrolmentAlerts emails the person each time a companion-app device is
// enrolled, so that an enrolment they did not make does not go unseen.
type enrolmentAlerts struct{ accounts *account.Service }

func (e enrolmentAlerts) DeviceEnrolled(ctx context.Context, a audit.Actor, d device.Device) error {
	name := d.Name
	if name == "" {
		name = "a phone"
	}
	text := fmt.Sprintf("The idlink app was set up on %s for your account. It can now log you in to health services and approve logins. "+
		"If this was not you, remove it in your security settings and reset your password now.", name)
	return e.accounts.SendSecurityAlert(ctx, a, d.AccountID, "device_enrolled", text)
}
