package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/idlink/idlink/server/oidc"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

const clientUsage = `usage:
  idlink client create --name NAME --redirect-uri URI [--redirect-uri URI …]
                       [--public-key-file PEM] [--scopes a,b] [--vtr JSON] [--default-vtr JSON]
                       [--auth-algs RS512,…] [--public] [--refresh] [--client-id ID]
                       [--id-token-claims nhs|all] [--metadata-oaep-hash sha1|sha256]
  idlink client list
  idlink client show CLIENT_ID
  idlink client update CLIENT_ID [any create flag; only those given change]
  idlink client delete CLIENT_ID
`

// clientFlags are the registration fields settable from the command line;
// set records which were given, so update changes only those.
type clientFlags struct {
	fs                                       *flag.FlagSet
	name, keyFile, scopes, vtr, defVTR, algs string
	clientID, idTokenClaims, oaepHash        string
	redirects                                stringList
	public, refresh                          bool
}

func newClientFlags(name string, stderr io.Writer) *clientFlags {
	f := &clientFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.name, "name", "", "the service's name, shown to people")
	f.fs.Var(&f.redirects, "redirect-uri", "a redirect URI (repeatable, at most 10)")
	f.fs.StringVar(&f.keyFile, "public-key-file", "", "the client's RSA public key (PEM) for private_key_jwt")
	f.fs.StringVar(&f.scopes, "scopes", "", "comma-separated scopes the client may ask for")
	f.fs.StringVar(&f.vtr, "vtr", "", `vectors of trust the client may ask for, as a JSON list, e.g. '["P9.Cp.Cd","P9.Cm"]'`)
	f.fs.StringVar(&f.defVTR, "default-vtr", "", "the vectors used when a request has no vtr (JSON list)")
	f.fs.StringVar(&f.algs, "auth-algs", "", "comma-separated client-assertion algorithms (default RS512)")
	f.fs.StringVar(&f.clientID, "client-id", "", "choose the client_id (default: random)")
	f.fs.BoolVar(&f.public, "public", false, "a public client (a native app): PKCE, no key")
	f.fs.BoolVar(&f.refresh, "refresh", false, "issue refresh tokens")
	f.fs.StringVar(&f.idTokenClaims, "id-token-claims", "", "nhs (default: NHS login's ID token claims; the rest at /userinfo) or all (every scope claim in the ID token)")
	f.fs.StringVar(&f.oaepHash, "metadata-oaep-hash", "", "RSA-OAEP hash of the generated client_user_metadata: sha1 (default, as NHS login) or sha256")
	return f
}

func (f *clientFlags) given() map[string]bool {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

// apply copies the given flags onto c.
func (f *clientFlags) apply(c *oidc.Client) error {
	set := f.given()
	if set["name"] {
		c.Name = f.name
	}
	if set["redirect-uri"] {
		c.RedirectURIs = f.redirects
	}
	if set["public-key-file"] {
		pem, err := os.ReadFile(f.keyFile)
		if err != nil {
			return fmt.Errorf("read public key: %w", err)
		}
		c.PublicKeyPEM = string(pem)
	}
	if set["scopes"] {
		c.Scopes = splitList(f.scopes)
	}
	if set["vtr"] {
		if err := json.Unmarshal([]byte(f.vtr), &c.VTR); err != nil {
			return fmt.Errorf("--vtr must be a JSON list of strings: %w", err)
		}
	}
	if set["default-vtr"] {
		if err := json.Unmarshal([]byte(f.defVTR), &c.DefaultVTR); err != nil {
			return fmt.Errorf("--default-vtr must be a JSON list of strings: %w", err)
		}
	}
	if set["auth-algs"] {
		c.AuthAlgs = splitList(f.algs)
	}
	if set["public"] {
		c.Public = f.public
	}
	if set["refresh"] {
		c.RefreshTokens = f.refresh
	}
	if set["id-token-claims"] {
		c.IDTokenClaims = f.idTokenClaims
	}
	if set["metadata-oaep-hash"] {
		c.MetadataOAEPHash = f.oaepHash
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func clientCommand(ctx context.Context, app *cliApp, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(app.stderr, clientUsage)
		return errUsage
	}
	clients := app.srv.OIDC.Clients()
	switch args[0] {
	case "create":
		return clientCreate(ctx, app, clients, args[1:])
	case "list":
		all, err := clients.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLIENT_ID\tNAME\tPUBLIC\tREFRESH\tREDIRECT_URIS")
		for _, c := range all {
			fmt.Fprintf(w, "%s\t%s\t%t\t%t\t%s\n", c.ID, c.Name, c.Public, c.RefreshTokens, strings.Join(c.RedirectURIs, " "))
		}
		return w.Flush()
	case "show":
		if len(args) != 2 {
			return fmt.Errorf("%w: client show CLIENT_ID", errUsage)
		}
		c, err := clients.Get(ctx, args[1])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(app.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	case "update":
		return clientUpdate(ctx, app, clients, args[1:])
	case "delete":
		if len(args) != 2 {
			return fmt.Errorf("%w: client delete CLIENT_ID", errUsage)
		}
		if err := clients.Delete(ctx, args[1]); err != nil {
			return err
		}
		fmt.Fprintln(app.stdout, "deleted", args[1])
		return nil
	default:
		fmt.Fprint(app.stderr, clientUsage)
		return fmt.Errorf("%w: unknown client command %q", errUsage, args[0])
	}
}

// clientCreate is `client create [flags]`.
func clientCreate(ctx context.Context, app *cliApp, clients *oidc.Clients, args []string) error {
	f := newClientFlags("client create", app.stderr)
	if err := f.fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var c oidc.Client
	c.ID = f.clientID
	if err := f.apply(&c); err != nil {
		return err
	}
	created, err := clients.Create(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(app.stdout, created.ID)
	return nil
}

// clientUpdate is `client update CLIENT_ID [flags]`.
func clientUpdate(ctx context.Context, app *cliApp, clients *oidc.Clients, args []string) error {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: client update CLIENT_ID [flags]", errUsage)
	}
	c, err := clients.Get(ctx, args[0])
	if err != nil {
		return err
	}
	f := newClientFlags("client update", app.stderr)
	if err := f.fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if f.given()["client-id"] {
		return fmt.Errorf("%w: a client_id cannot be changed", errUsage)
	}
	if err := f.apply(c); err != nil {
		return err
	}
	if _, err := clients.Update(ctx, *c); err != nil {
		return err
	}
	fmt.Fprintln(app.stdout, "updated", c.ID)
	return nil
}

func keysCommand(ctx context.Context, app *cliApp, args []string) error {
	const usage = "usage: idlink keys list | idlink keys rotate [--force]\n"
	if len(args) == 0 {
		fmt.Fprint(app.stderr, usage)
		return errUsage
	}
	keys := app.srv.OIDC.Keys()
	switch args[0] {
	case "list":
		infos, err := keys.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KID\tSTATE\tALG\tCREATED\tPUBLISHED\tLEAVES_JWKS")
		for _, k := range infos {
			leaves := "-"
			if k.RetireAfter != nil {
				leaves = k.RetireAfter.Format("2006-01-02 15:04:05Z07:00")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\t%s\n", k.ID, k.State, k.Algorithm, k.CreatedAt.Format("2006-01-02 15:04:05Z07:00"), k.Published, leaves)
		}
		return w.Flush()
	case "rotate":
		fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
		fs.SetOutput(app.stderr)
		force := fs.Bool("force", false, "rotate even if the next key was published less than the lead time ago (relying parties may not have fetched it)")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		k, err := keys.Rotate(ctx, *force)
		if errors.Is(err, oidc.ErrKeyTooNew) {
			return fmt.Errorf("%w (wait, or use --force)", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(app.stdout, "now signing with %s; a new next key is published\n", k.ID)
		return nil
	default:
		fmt.Fprint(app.stderr, usage)
		return fmt.Errorf("%w: unknown keys command %q", errUsage, args[0])
	}
}
