// Package server wires the identity provider together: it opens the
// database, builds every capability from configuration, mounts their
// routes on one Fiber application with the middleware every request passes
// through (request id, structured logs, metrics, security headers,
// sessions), and runs it with a graceful shutdown.
//
// This is the one place where dependencies are constructed; capabilities
// receive what they need and never reach for globals.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/closure"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/overload"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
	"github.com/idlink/idlink/server/web"
)

// Options are what a caller may supply beyond configuration; zero values
// give production behaviour.
type Options struct {
	Logger *slog.Logger     // default: JSON to stderr at the configured level
	Now    func() time.Time // default: time.Now
	// PasswordParams overrides the Argon2id parameters (tests use cheap
	// ones); the zero value means password.DefaultParams.
	PasswordParams password.Params
	// Sender overrides the notification provider chosen by configuration.
	Sender notify.Sender
}

// Server is the assembled identity provider.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	now      func() time.Time
	DB       *sqlx.DB
	App      *fiber.App
	Metrics  *metrics.Metrics
	Audit    *audit.Log
	Accounts *account.Service
	// Sending applies the text and email budgets (package sending).
	Sending  *sending.Sender
	Login    *login.Journey
	Sessions *web.Sessions
	Renderer *web.Renderer
	// Outbox is the sandbox notification provider (nil unless configured).
	Outbox *notify.Sandbox
	// OIDC is the OpenID Connect provider.
	OIDC *oidc.Server
	// Demo are the development clients (zero outside development).
	Demo oidc.DemoClients
	// Devices keeps remembered browsers and companion-app devices.
	Devices *device.Store
	// FIDO runs WebAuthn ceremonies for passkeys and the companion app.
	FIDO *fido.Service
	// Push asks phones to approve logins.
	Push *push.Service
	// StreamApp serves only the companion app's stream on
	// IDLINK_STREAM_ADDR (nil when unset).
	StreamApp *fiber.App
	// Identity proves who people are (P5, P9) and checks PDS at login.
	Identity *identity.Service
	// Closure deletes accounts and closes unused ones.
	Closure *closure.Service
	// PDSSandbox is the in-process PDS dataset (nil with the FHIR client);
	// GP is the GP linkage sandbox.
	PDSSandbox *pds.Sandbox
	GP         *gp.Sandbox

	// clients decides each request's client address.
	clients *web.ClientAddresses
	// MetricsApp serves /metrics on IDLINK_METRICS_ADDR (nil when unset).
	MetricsApp *fiber.App

	bg     sync.WaitGroup
	stopBg context.CancelFunc
}

// New opens and migrates the database and builds the application.
func New(ctx context.Context, cfg config.Config, opt Options) (*Server, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = NewLogger(cfg.LogLevel)
	}
	db, err := migrations.OpenMigratedWith(ctx, cfg.DatabaseURL, dbOptions(cfg))
	if err != nil {
		return nil, err
	}
	s, err := build(cfg, db, opt)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.OIDC.Keys().EnsureKeys(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if cfg.Dev() {
		if s.Demo, err = s.OIDC.EnsureDemoClients(ctx, cfg.DemoClientKeyPath); err != nil {
			s.Close()
			return nil, fmt.Errorf("demo clients: %w", err)
		}
	}
	return s, nil
}

// Config returns the configuration the server was built with.
func (s *Server) Config() config.Config { return s.cfg }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

func (s *Server) home(c fiber.Ctx) error {
	return s.Renderer.Render(c, http.StatusOK, "home", web.View{Title: "Log in to health services with idlink"})
}

func (s *Server) ready(c fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	err := migrations.Ping(ctx, s.DB)
	if err == nil {
		err = s.Sessions.Probe(ctx)
	}
	if err != nil {
		s.log.Warn("not ready", "error", err)
		c.Set(fiber.HeaderRetryAfter, retryAfter)
		return c.Status(http.StatusServiceUnavailable).SendString("database unavailable")
	}
	return c.SendString("ready")
}

// observe gives each request an id, logs it, and counts it.
func (s *Server) observe(c fiber.Ctx) error {
	start := time.Now()
	rid := c.Get(web.RequestIDHeader)
	if !validRequestID(rid) {
		rid = secrets.NewID()
	}
	web.SetRequestID(c, rid)
	c.Set(web.RequestIDHeader, rid)
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("error handler failed", "request_id", rid, "error", herr)
			c.Status(http.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	if status == http.StatusNotFound {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	s.Metrics.Requests.WithLabelValues(c.Method(), route, strconv.Itoa(status)).Inc()
	s.Metrics.Latency.WithLabelValues(c.Method(), route).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.Context(), level, "request", "request_id", rid, "method", c.Method(), "path", c.Path(),
		"route", route, "status", status, "duration_ms", float64(elapsed.Microseconds())/1000, "ip", web.ClientIP(c))
	return nil
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// handleError turns an error from a handler into a response: an error page
// for people, JSON for APIs. Unexpected errors are logged with the request
// id and shown as a generic problem.
func (s *Server) handleError(c fiber.Ctx, err error) error {
	status := http.StatusInternalServerError
	title, msg := "Sorry, there is a problem with the service", "Try again later."
	var fe *fiber.Error
	switch {
	case errors.As(err, &fe):
		status = fe.Code
		switch status {
		case http.StatusNotFound:
			title, msg = "Page not found", "If you typed the web address, check it is correct."
		case http.StatusMethodNotAllowed:
			title, msg = "Page not found", "This page cannot be used that way."
		case http.StatusRequestEntityTooLarge:
			title, msg = "What you sent is too large", "Go back and try again with less."
		default:
			title, msg = http.StatusText(status), fe.Message
		}
	case errors.Is(err, password.ErrBusy), errors.Is(err, overload.ErrBusy):
		status = http.StatusServiceUnavailable
		title, msg = "The service is busy", "Too many people are logging in right now. Wait a moment and try again."
		s.log.Warn("busy", "request_id", web.RequestID(c), "path", c.Path(), "error", err)
	case migrations.IsUnavailable(err):
		// A database that is down, hung or restarting (or a request that
		// ran out of time waiting for it): nothing was wrong with the
		// request, so say when to try again rather than 500.
		status = http.StatusServiceUnavailable
		title, msg = "Sorry, the service is unavailable", "Try again in a few seconds."
		s.log.Error("database unavailable", "request_id", web.RequestID(c), "path", c.Path(), "error", err)
	default:
		s.log.Error("request failed", "request_id", web.RequestID(c), "path", c.Path(), "error", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Set(fiber.HeaderRetryAfter, retryAfter)
	}
	if wantsJSON(c) {
		code := "server_error"
		if status < 500 {
			code = "invalid_request"
		}
		if status == http.StatusNotFound {
			code = "not_found"
		}
		if status == http.StatusServiceUnavailable {
			code = "temporarily_unavailable"
		}
		return c.Status(status).JSON(fiber.Map{"error": code, "error_description": title})
	}
	return s.Renderer.ErrorPage(c, status, title, msg)
}

func wantsJSON(c fiber.Ctx) bool {
	accept := c.Get(fiber.HeaderAccept)
	return c.Get(fiber.HeaderContentType) == fiber.MIMEApplicationJSON ||
		(accept != "" && !containsHTML(accept) && containsJSON(accept))
}

func containsHTML(s string) bool { return indexFold(s, "text/html") >= 0 }
func containsJSON(s string) bool { return indexFold(s, "json") >= 0 }

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := range len(sub) {
			a, b := s[i+j], sub[j]
			if a >= 'A' && a <= 'Z' {
				a += 'a' - 'A'
			}
			if a != b {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// Serve answers requests on ln until ctx ends, then stops taking new
// connections, lets in-flight requests finish (up to the configured
// shutdown timeout) and stops background work.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bgCtx, stop := context.WithCancel(context.Background())
	s.stopBg = stop
	s.startBackground(bgCtx)
	errc := make(chan error, 1)
	go func() {
		errc <- s.App.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true})
	}()
	if s.MetricsApp != nil {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			stop()
			_ = s.App.Shutdown()
			s.bg.Wait()
			return fmt.Errorf("listen on IDLINK_METRICS_ADDR %s: %w", s.cfg.MetricsAddr, err)
		}
		s.log.Info("metrics listener", "addr", mln.Addr().String())
		go func() {
			if err := s.MetricsApp.Listener(mln, fiber.ListenConfig{DisableStartupMessage: true}); err != nil {
				s.log.Error("metrics listener stopped", "error", err)
			}
		}()
	}
	if s.StreamApp != nil {
		sln, err := net.Listen("tcp", s.cfg.StreamAddr)
		if err != nil {
			stop()
			_ = s.App.Shutdown()
			s.bg.Wait()
			return fmt.Errorf("listen on IDLINK_STREAM_ADDR %s: %w", s.cfg.StreamAddr, err)
		}
		s.log.Info("stream listener", "addr", sln.Addr().String())
		go func() {
			if err := s.StreamApp.Listener(sln, fiber.ListenConfig{DisableStartupMessage: true}); err != nil {
				s.log.Error("stream listener stopped", "error", err)
			}
		}()
	}
	select {
	case err := <-errc:
		stop()
		s.bg.Wait()
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	// Hijacked WebSockets are not closed by the HTTP server's shutdown:
	// tell the apps we are going (1001) so they reconnect elsewhere.
	s.Push.Close()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.StreamApp != nil {
		_ = s.StreamApp.ShutdownWithContext(sctx)
	}
	if s.MetricsApp != nil {
		_ = s.MetricsApp.ShutdownWithContext(sctx)
	}
	err := s.App.ShutdownWithContext(sctx)
	stop()
	s.bg.Wait()
	if lerr := <-errc; lerr != nil && err == nil {
		err = lerr
	}
	return err
}

// Close releases the database.
func (s *Server) Close() error {
	if s.Push != nil {
		s.Push.Close()
	}
	if s.OIDC != nil {
		_ = s.OIDC.Close()
	}
	if s.Accounts != nil {
		s.Accounts.Close()
	}
	return s.DB.Close()
}

func (s *Server) startBackground(ctx context.Context) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.OIDC.Maintain(ctx, 30*time.Second)
	}()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.Push.Run(ctx); err != nil {
			s.log.Error("push bus stopped", "error", err)
		}
	}()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.Closure.Run(ctx, time.Hour)
	}()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.purge(ctx)
			}
		}
	}()
}

// purge deletes expired sessions, codes, links and counters.
func (s *Server) purge(ctx context.Context) {
	if _, err := s.Sessions.PurgeExpired(ctx); err != nil {
		s.log.Warn("purge sessions", "error", err)
	}
	if err := s.Accounts.Purge(ctx); err != nil {
		s.log.Warn("purge account links", "error", err)
	}
	if err := s.Devices.Purge(ctx); err != nil {
		s.log.Warn("purge devices", "error", err)
	}
	if err := s.Push.Purge(ctx); err != nil {
		s.log.Warn("purge push approvals", "error", err)
	}
	if n, err := s.Identity.PurgeEvidence(ctx); err != nil {
		s.log.Warn("purge identity evidence", "error", err)
	} else if n > 0 {
		s.log.Info("identity evidence deleted after retention", "checks", n)
	}
	if n, err := s.Identity.RetryPending(ctx, audit.Actor{RequestID: "pds-retry"}); err != nil {
		s.log.Warn("retry PDS checks", "error", err)
	} else if n > 0 {
		s.log.Info("PDS checks retried", "accounts", n)
	}
	keep := max(24*time.Hour, s.cfg.Sending.LongestWindow(), s.cfg.CodeGuesses.Per)
	if _, err := ratelimit.New(s.DB, s.now).PurgeExpired(ctx, keep); err != nil {
		s.log.Warn("purge rate counters", "error", err)
	}
}
