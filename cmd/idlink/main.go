// Command idlink runs the identity provider and administers it.
//
//	idlink serve      start the server (migrates the database first)
//	idlink migrate    bring the database schema up to date and exit
//	idlink client …   register and manage relying parties (OIDC clients)
//	idlink keys …     list or rotate the token-signing keys
//	idlink staff …    give accounts back-office roles (admin, id_checker, support),
//	                  remove it, or list the staff
//	idlink dev seed-devices -n 15000 -out devices.json
//	                  development only (IDLINK_ENV=development): create N
//	                  active accounts, each with a companion-app device
//	                  registered through the real FIDO ceremony, and write
//	                  the devices' keys (the idlink-companion state format,
//	                  plus account_id) as a JSON array, mode 0600, for
//	                  "idlink-companion listen" and "idlink-companion load"
//
// Configuration comes from IDLINK_* environment variables; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on IDLINK_DEBUG_ADDR
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlink:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `usage: idlink <command> [arguments]

commands:
  serve      start the server (migrates the database first)
  migrate    bring the database schema up to date and exit
  client     create | list | show | update | delete relying parties
  keys       list | rotate token-signing keys
  staff      set -email X -role admin,id_checker,support | remove -email X | list
  dev        seed-devices -n N -out FILE (IDLINK_ENV=development only)
`

// run executes one command; main is only its shell, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, stdout)
	case "migrate":
		return migrate(ctx, cfg, stdout)
	case "client", "keys", "staff":
		srv, err := server.New(ctx, cfg, server.Options{Logger: server.NewLogger("warn")})
		if err != nil {
			return err
		}
		defer srv.Close()
		app := &cliApp{srv: srv, stdout: stdout, stderr: stderr}
		switch args[0] {
		case "client":
			return clientCommand(ctx, app, args[1:])
		case "staff":
			return staffCommand(ctx, app, args[1:])
		}
		return keysCommand(ctx, app, args[1:])
	case "dev":
		return devCommand(ctx, cfg, getenv, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
}

// cliApp is what the administrative commands work with: the assembled
// server (for its stores) and where to print.
type cliApp struct {
	srv            *server.Server
	stdout, stderr io.Writer
}

func serve(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	srv, err := server.New(ctx, cfg, server.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	fmt.Fprintf(stdout, "idlink %s mode, database %s\n", cfg.Env, string(migrations.DialectOf(srv.DB)))
	fmt.Fprintf(stdout, "  open %s to create an account or log in\n", cfg.Issuer)
	fmt.Fprintf(stdout, "  OpenID Connect discovery: %s/.well-known/openid-configuration\n", cfg.Issuer)
	if cfg.Dev() && srv.Demo.RP != nil {
		fmt.Fprintf(stdout, "  demo relying party: client_id %s, private key %s\n", srv.Demo.RP.ID, srv.Demo.RPKeyPath)
	}
	if cfg.Dev() {
		fmt.Fprintf(stdout, "  emails and text messages go to the development outbox: %s/dev/outbox\n", cfg.Issuer)
	}
	if addr := os.Getenv("IDLINK_DEBUG_ADDR"); addr != "" {
		// Profiles for the operator (go tool pprof), on an address of its
		// own that is never the public one.
		dbg := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = dbg.ListenAndServe() }()
		defer dbg.Close()
		fmt.Fprintf(stdout, "  profiles on http://%s/debug/pprof/\n", addr)
	}
	fmt.Fprintf(stdout, "  listening on %s (Ctrl-C to stop)\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

func migrate(ctx context.Context, cfg config.Config, stdout io.Writer) error {
	// The server's timeouts apply: raise IDLINK_DB_STATEMENT_TIMEOUT for a
	// long migration.
	db, err := migrations.OpenWith(ctx, cfg.DatabaseURL, migrations.Options{MaxOpenConns: 2,
		StatementTimeout: cfg.DBStatementTimeout, LockTimeout: cfg.DBLockTimeout, ApplicationName: "idlink-migrate"})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := migrations.Up(ctx, db)
	if err != nil {
		return err
	}
	v, err := migrations.Version(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s); schema version %d (%s)\n", n, v, migrations.DialectOf(db))
	return nil
}
