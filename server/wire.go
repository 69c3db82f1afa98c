package server

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/middleware/recover"
	"github.com/gofiber/fiber/v3/middleware/static"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idlink/idlink/device"
	"github.com/idlink/idlink/fido"
	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/backoffice"
	"github.com/idlink/idlink/server/closure"
	"github.com/idlink/idlink/server/companion"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/identity"
	"github.com/idlink/idlink/server/identity/gp"
	"github.com/idlink/idlink/server/identity/media"
	"github.com/idlink/idlink/server/identity/pds"
	"github.com/idlink/idlink/server/login"
	"github.com/idlink/idlink/server/metrics"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/oidc"
	"github.com/idlink/idlink/server/overload"
	"github.com/idlink/idlink/server/partner"
	"github.com/idlink/idlink/server/password"
	"github.com/idlink/idlink/server/ratelimit"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/sending"
	"github.com/idlink/idlink/server/settings"
	"github.com/idlink/idlink/server/web"
)

// This file is the one place where capabilities are built. Each is
// constructed once, in dependency order, with everything it needs passed
// to its constructor; nothing is set or patched afterwards:
//
//	keys, audit, sender, renderer, sessions → accounts
//	→ devices → fido → push
//	→ oidc grants → identity (PDS, GP, evidence) → people (claims)
//	→ login (factors in order; identity's per-login check)
//	→ closure (deleting accounts) → settings → account pages → oidc provider → /authorize → companion API
//	→ the Fiber app, its middleware and every route.

// build assembles the server over an open, migrated database.
func build(cfg config.Config, db *sqlx.DB, opt Options) (*Server, error) {
	keys, err := secrets.NewKeyring(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	s := &Server{cfg: cfg, log: opt.Logger, now: opt.Now, DB: db, Metrics: metrics.New()}
	s.Audit = audit.New(db, opt.Now)
	if s.Renderer, err = web.NewRenderer(cfg.Dev()); err != nil {
		return nil, err
	}
	s.Sessions = web.NewSessions(db, keys, cfg.SessionIdle, cfg.SessionAbsolute, cfg.HTTPS(), opt.Now)
	sender, err := s.buildSender(opt)
	if err != nil {
		return nil, err
	}
	params := opt.PasswordParams
	if params == (password.Params{}) {
		params = password.DefaultParams
	}
	limiter := ratelimit.New(db, opt.Now)
	s.Sending = sending.New(sending.Config{Limits: cfg.Sending, Deadline: cfg.NotifyDeadline, AllowDrama: cfg.Dev()},
		sender, limiter, keys, s.Metrics, opt.Logger, opt.Now)
	s.Accounts = account.NewService(account.Config{Issuer: cfg.Issuer, TermsVersion: cfg.TermsVersion, Development: cfg.Dev(), CodeGuesses: cfg.CodeGuesses},
		db, keys, password.NewHasher(params, cfg.MaxHashes), s.Sending, limiter, s.Audit, s.Metrics, opt.Now)
	if err := s.buildDevices(keys); err != nil {
		return nil, err
	}
	if err := s.buildPush(context.Background()); err != nil {
		return nil, fmt.Errorf("push approvals: %w", err)
	}
	if err := s.buildIdentity(context.Background(), keys, oidc.NewGrants(db, opt.Now)); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	people := &people{accounts: s.Accounts, identity: s.Identity}
	s.OIDC, err = oidc.New(oidc.Config{
		Issuer: cfg.Issuer, Development: cfg.Dev(), AdminToken: cfg.AdminToken,
		AllowedAssertedPairs: cfg.AssertedLoginPairs, Now: opt.Now,
	}, oidc.Deps{DB: db, Keyring: keys, People: people, Audit: s.Audit, Logger: opt.Logger})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	partnerAPI, err := s.buildPartner(sender, keys)
	if err != nil {
		return nil, fmt.Errorf("partner apis: %w", err)
	}
	if err := s.buildClosure(partnerAPI); err != nil {
		return nil, fmt.Errorf("closure: %w", err)
	}
	s.Login = s.buildLogin()
	if s.clients, err = web.NewClientAddresses(cfg.ProxyHeader, cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("client addresses: %w", err)
	}
	s.App = s.newApp()
	s.registerMetrics()
	if err := s.mount(people); err != nil {
		return nil, err
	}
	partnerAPI.Register(s.App)
	partnerAPI.RegisterPages(web.Pages{R: s.App, Renderer: s.Renderer, Sessions: s.Sessions})
	return s, nil
}

// buildPartner creates NHS login's partner APIs (the users endpoint,
// account provisioning) over the provider's client tokens, accounts,
// identity records and PDS: the sandbox the identity capability uses, or
// a FHIR client of the same configuration.
func (s *Server) buildPartner(sender notify.Sender, keys *secrets.Keyring) (*partner.API, error) {
	var dir pds.Directory
	if s.PDSSandbox != nil {
		dir = s.PDSSandbox
	} else {
		var err error
		if dir, err = s.buildPDS(); err != nil {
			return nil, err
		}
	}
	return partner.New(partner.Config{Issuer: s.cfg.Issuer, TermsVersion: s.cfg.TermsVersion}, partner.Deps{
		DB: s.DB, Tokens: s.OIDC, Subjects: s.OIDC, Accounts: s.Accounts, Identity: s.Identity, PDS: dir, Keys: keys,
		Sender: sender, Renderer: s.Renderer, Limiter: ratelimit.New(s.DB, s.now), Audit: s.Audit, Logger: s.log, Now: s.now,
	})
}

// buildSender chooses the notification provider: the caller's, GOV.UK
// Notify, or the sandbox outbox.
func (s *Server) buildSender(opt Options) (notify.Sender, error) {
	if opt.Sender != nil {
		return opt.Sender, nil
	}
	if s.cfg.NotifyProvider != "notify" {
		s.Outbox = notify.NewSandbox(s.DB, s.now)
		return s.Outbox, nil
	}
	templates := map[notify.Kind]string{}
	for k, v := range s.cfg.NotifyTemplates {
		templates[notify.Kind(k)] = v
	}
	n, err := notify.NewNotify(notify.NotifyConfig{BaseURL: s.cfg.NotifyBaseURL, APIKey: s.cfg.NotifyAPIKey, Templates: templates, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("notify provider: %w", err)
	}
	return n, nil
}

// buildDevices creates the device store (remembered browsers, companion
// apps) and the WebAuthn service over it.
func (s *Server) buildDevices(keys *secrets.Keyring) error {
	s.Devices = device.New(s.DB, keys, device.Config{RememberIdle: s.cfg.RememberDevice}, s.now)
	aaguids := make([]uuid.UUID, 0, len(s.cfg.PasskeyAAGUIDs))
	for _, a := range s.cfg.PasskeyAAGUIDs {
		id, err := uuid.Parse(a)
		if err != nil {
			return fmt.Errorf("IDLINK_PASSKEY_AAGUIDS: %q: %w", a, err)
		}
		aaguids = append(aaguids, id)
	}
	var err error
	s.FIDO, err = fido.New(s.DB, fido.Config{RPID: s.cfg.WebAuthnRPID, RPDisplayName: "idlink", RPOrigins: s.cfg.WebAuthnOrigins,
		AAGUIDAllowList: aaguids, RefuseBackupEligible: s.cfg.RefuseSyncedPasskeys}, s.Devices, s.now)
	if err != nil {
		return fmt.Errorf("webauthn: %w", err)
	}
	return nil
}

// buildPush creates the push service: the in-process bus on SQLite (one
// node), PostgreSQL LISTEN/NOTIFY otherwise; FCM when a project is
// configured.
func (s *Server) buildPush(ctx context.Context) error {
	var bus push.Bus = push.NewMemBus()
	if migrations.DialectOf(s.DB) == migrations.Postgres {
		b, err := push.NewPGBus(s.DB, s.cfg.DatabaseURL, s.log)
		if err != nil {
			return err
		}
		bus = b
	}
	var sender push.Sender
	if s.cfg.FCMProjectID != "" {
		f, err := push.NewFCM(ctx, push.FCMConfig{ProjectID: s.cfg.FCMProjectID, CredentialsFile: s.cfg.FCMCredentialsFile, Endpoint: s.cfg.FCMEndpoint})
		if err != nil {
			return err
		}
		sender = f
	}
	svc, err := push.New(push.Config{TTL: s.cfg.PushTTL}, push.Deps{
		DB: s.DB, Devices: s.Devices, Verifier: s.FIDO, Bus: bus, Sender: sender,
		Audit: pushAudit{s.Audit, s.log}, Alerter: pushAlerts{s.Accounts}, Logger: s.log, Now: s.now,
	})
	if err != nil {
		return err
	}
	s.Push = svc
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "idlink_push_sockets", Help: "Companion-app sockets held by this replica.",
	}, func() float64 { return float64(svc.Hub().Connections()) }))
	return nil
}

// buildIdentity creates the identity capability over its external
// systems: PDS (the sandbox dataset or the FHIR API), the GP linkage
// sandbox (seeded from the PDS sandbox in development) and the encrypted
// evidence store; grants revokes what relying parties hold for a person
// PDS marks as deceased.
func (s *Server) buildIdentity(ctx context.Context, keys *secrets.Keyring, grants identity.Grants) error {
	dir, err := s.buildPDS()
	if err != nil {
		return err
	}
	gpSystem := gp.NewSandbox(s.DB, s.now)
	if s.PDSSandbox != nil {
		var seed []gp.SeedPatient
		for _, p := range s.PDSSandbox.Patients() {
			if p.GPODSCode != "" {
				seed = append(seed, gp.SeedPatient{NHSNumber: p.NHSNumber, ODSCode: p.GPODSCode})
			}
		}
		if _, err := gpSystem.Seed(ctx, seed); err != nil {
			return fmt.Errorf("seed GP linkage sandbox: %w", err)
		}
	}
	s.GP = gpSystem
	store, err := media.New(media.Config{Dir: s.cfg.MediaDir, Key: keys.Derive("identity-media"), KeyID: "1", Now: s.now})
	if err != nil {
		return fmt.Errorf("evidence store: %w", err)
	}
	s.Identity, err = identity.New(identity.Config{MediaRetention: s.cfg.MediaRetention}, identity.Deps{
		DB: s.DB, Accounts: s.Accounts, Grants: grants, PDS: dir, GP: gpSystem, Media: store,
		Limiter: ratelimit.New(s.DB, s.now), Audit: s.Audit, Checks: s.Metrics, Logger: s.log, Now: s.now,
	})
	return err
}

// buildPDS chooses the PDS directory: the FHIR API, or the sandbox
// dataset.
func (s *Server) buildPDS() (pds.Directory, error) {
	if s.cfg.PDSProvider != "fhir" {
		s.PDSSandbox = pds.NewSandbox()
		return s.PDSSandbox, nil
	}
	key, err := secrets.ReadRSAPrivateKey(s.cfg.PDSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("IDLINK_PDS_KEY_FILE: %w", err)
	}
	c, err := pds.NewClient(pds.Config{BaseURL: s.cfg.PDSBaseURL, TokenURL: s.cfg.PDSTokenURL, ClientID: s.cfg.PDSClientID,
		Key: key, KID: s.cfg.PDSKeyID, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("pds client: %w", err)
	}
	return c, nil
}

// buildLogin creates the login journey. Its second factors, in order of
// preference: a remembered browser, the phone app, a texted code, a
// passkey (for relying parties that ask for Cm).
func (s *Server) buildLogin() *login.Journey {
	remembered := login.NewRememberedBrowser(s.Devices, login.RememberConfig{Lifetime: s.cfg.RememberDevice, Secure: s.cfg.HTTPS()})
	return login.New(login.Deps{
		Accounts: s.Accounts, Renderer: s.Renderer, Audit: s.Audit, Metrics: s.Metrics,
		Check: loginCheck{s.Identity, s.Accounts}, Passkeys: s.FIDO, Now: s.now,
	},
		remembered,
		login.NewPhoneApproval(s.Push),
		login.NewSecurityCode(remembered),
		login.NewPasskeyFactor(s.FIDO),
	)
}

// buildClosure creates deleting accounts and closing unused ones: every
// capability that keeps something about an account forgets it (more are
// those built before it that keep something too, e.g. the partner APIs).
func (s *Server) buildClosure(more ...closure.Forgetter) error {
	var err error
	s.Closure, err = closure.New(closure.Config{After: s.cfg.CloseUnusedAfter, Warning: s.cfg.ClosureWarning}, closure.Deps{
		DB: s.DB, Accounts: s.Accounts, Sessions: s.Sessions, Audit: s.Audit, Registry: s.Metrics.Registry,
		Forget: append([]closure.Forgetter{forgetPerson{s.OIDC}, s.Devices, s.FIDO, s.Push, s.Identity}, more...),
		Logger: s.log, Now: s.now,
	})
	return err
}

// newApp creates the Fiber application with the middleware every request
// passes through.
func (s *Server) newApp() *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:      "idlink",
		ErrorHandler: s.handleError,
		// Photo ID uploads need more than the 1 MiB every other route
		// allows (limitBody); bodies are streamed so that a large one is
		// refused from its Content-Length before it is read.
		BodyLimit:         s.cfg.MaxUpload,
		StreamRequestBody: true,
		// Authorization requests carry JWTs and WebAuthn responses in the
		// query string: allow 16 KiB of request line and headers.
		ReadBufferSize: 16 << 10,
		ReadTimeout:    15 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    60 * time.Second,
		// No TrustProxy: the client address is web.ClientAddresses's
		// decision alone (IDLINK_PROXY_HEADER, IDLINK_TRUSTED_PROXIES).
	})
	app.Use(s.clients.Middleware())
	app.Use(s.observe)
	app.Use(overload.New(overloadConfig(s.cfg), shedCounter{s.Metrics}).Middleware())
	app.Use(limitBody(1<<20, s.cfg.MaxUpload, "/prove/photo"))
	app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c fiber.Ctx, e any) {
		s.log.Error("panic", "request_id", web.RequestID(c), "panic", fmt.Sprint(e))
	}}))
	app.Use(web.SecurityHeaders(s.cfg.HTTPS()))
	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/readyz", s.ready)
	app.Use("/assets", static.New("", static.Config{FS: web.Static(), MaxAge: 86400}))
	return app
}

// mount builds the page handlers and the APIs over the capabilities and
// mounts every route.
func (s *Server) mount(people *people) error {
	p := web.Pages{R: s.App, Renderer: s.Renderer, Sessions: s.Sessions}
	securitySettings := settings.New(settings.Deps{
		Login: s.Login, Accounts: s.Accounts, Devices: s.Devices, FIDO: s.FIDO,
		Sessions: s.Sessions, Renderer: s.Renderer, Audit: s.Audit, Secure: s.cfg.HTTPS(),
		DeviceRemoved: s.Push.DeviceRemoved, Grants: s.OIDC,
		RecentLogin: s.cfg.RecentLogin, Now: s.now,
		PhoneMatch: s.Identity, Sharing: s.OIDC, Closer: s.Closure,
	})
	accountPages := account.NewHandlers(account.HandlerDeps{Service: s.Accounts, Renderer: s.Renderer, SignIn: s.Login,
		Activity: s.Audit, Sessions: s.Sessions, OnReset: securitySettings})
	authorize := oidc.NewAuthorize(s.OIDC, s.Login, s.Renderer, s.FIDO)
	api, err := companion.New(companion.Config{Issuer: s.OIDC.Issuer()}, companion.Deps{
		Tokens: s.OIDC, People: people, Devices: s.Devices, FIDO: s.FIDO,
		Limiter: ratelimit.New(s.DB, s.now), Audit: s.Audit, Logger: s.log,
		Approvals: s.Push, Stream: s.Push.Hub(),
		Notices: s.Accounts, Now: s.now,
	})
	if err != nil {
		return fmt.Errorf("companion api: %w", err)
	}

	p.Get("/", s.home)
	accountPages.Register(p)
	s.Login.Register(p)
	securitySettings.Register(p)
	securitySettings.RegisterDetails(p)
	identity.NewPages(s.Identity, identity.PageDeps{Login: s.Login, Renderer: s.Renderer, Audit: s.Audit}).Register(p)
	admin := identity.NewAdmin(s.Identity, identity.AdminDeps{Login: s.Login, Renderer: s.Renderer,
		LoginMaxAge: s.cfg.StaffLoginMaxAge, Now: s.now})
	admin.Register(p)
	backoffice.New(backoffice.Deps{Gate: admin, Staff: s.Identity, Accounts: s.Accounts, Renderer: s.Renderer,
		Clients: s.OIDC.Clients(), AssertedPairs: s.cfg.AssertedLoginPairs, Audit: s.Audit,
		Support: backoffice.SupportDeps{People: s.Accounts, Proofs: s.Identity, Devices: s.Devices, Passkeys: s.FIDO,
			Approvals: s.Push, Sessions: s.Sessions, Grants: s.OIDC, Activity: s.Audit, DeviceRemoved: s.Push.DeviceRemoved, Now: s.now}}).Register(p)
	authorize.Register(p)
	s.OIDC.Register(s.App)
	api.Register(s.App)
	if s.cfg.StreamAddr != "" {
		s.StreamApp = s.newStreamApp(api)
	}
	if s.cfg.AdminToken != "" {
		s.OIDC.Admin().Register(s.App.Group("/admin/api"))
	}
	if s.cfg.Dev() && s.Outbox != nil {
		s.registerDev(p)
	}
	return nil
}

// newStreamApp serves only the companion app's stream, on
// IDLINK_STREAM_ADDR.
func (s *Server) newStreamApp(api *companion.API) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName: "idlink-stream", ErrorHandler: s.handleError,
		// The buffer holds the upgrade request (a device JWT and a few
		// headers). ReduceMemoryUsage returns it to the pool once the
		// request is read, so a hijacked socket keeps no HTTP buffer
		// at all (measured: 16 KiB less per idle socket).
		ReadBufferSize: streamReadBuffer, WriteBufferSize: streamReadBuffer, ReduceMemoryUsage: true,
		ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
	})
	app.Use(s.clients.Middleware())
	app.Use(s.observe)
	app.Use(web.SecurityHeaders(s.cfg.HTTPS()))
	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	api.RegisterStream(app)
	return app
}

// streamReadBuffer is the stream listener's HTTP read buffer: an upgrade
// request with a device JWT fits in well under 4 KiB.
const streamReadBuffer = 4 << 10

// readyTimeout bounds the readiness probe, so that /readyz fails within
// 2 s of the database hanging (a lock held, every pooled connection
// stuck) or going away.
const readyTimeout = 1500 * time.Millisecond

// retryAfter is the Retry-After (seconds) of every 503: busy, or the
// database unavailable.
const retryAfter = "2"

// dbOptions is the pool and its server-side timeouts from configuration.
func dbOptions(cfg config.Config) migrations.Options {
	return migrations.Options{
		MaxOpenConns: cfg.DBMaxOpenConns, MaxIdleConns: cfg.DBMaxIdleConns,
		StatementTimeout: cfg.DBStatementTimeout, LockTimeout: cfg.DBLockTimeout,
		ApplicationName: "idlink",
	}
}

// overloadConfig is admission control and the request deadline from
// configuration. Probes, metrics, assets and the long-lived streams (the
// phone's socket, the approval page's events) are outside both: they hold a
// connection, not a share of the machine, and a probe must answer when the
// server is full.
func overloadConfig(cfg config.Config) overload.Config {
	return overload.Config{
		RequestTimeout: cfg.RequestTimeout, MaxConcurrent: cfg.MaxConcurrentRequests,
		Queue: cfg.RequestQueue, QueueWait: cfg.RequestQueueWait,
		Exempt: overload.PathPrefixes(
			[]string{"/healthz", "/readyz", "/metrics", "/app/v1/stream", "/login/approve/events", "/dev/push/bench"},
			[]string{"/assets/"}),
		// A photo ID upload may take a while to arrive (up to 64 MiB).
		Slow: overload.PathPrefixes([]string{"/prove/photo"}, nil),
	}
}

// shedCounter counts requests refused by admission control.
type shedCounter struct{ m *metrics.Metrics }

func (s shedCounter) Inc(reason string) { s.m.Shed.WithLabelValues(reason).Inc() }
