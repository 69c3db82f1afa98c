package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/account"
	"github.com/idlink/idlink/server/audit"
	"github.com/idlink/idlink/server/identity"
)

const staffUsage = `usage:
  idlink staff set -email EMAIL -role admin,id_checker,support (one or more, comma-separated)
  idlink staff remove -email EMAIL
  idlink staff list
`

// staffActor is who the audit events of staff changes name: the operator
// at the command line.
var staffActor = audit.Actor{UserAgent: "idlink staff"}

// staffCommand manages the back office's staff ("idlink staff …"): the
// accounts that may review photo ID checks under /admin, and their roles.
func staffCommand(ctx context.Context, app *cliApp, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(app.stderr, staffUsage)
		return fmt.Errorf("%w: staff needs a subcommand (set, remove, list)", errUsage)
	}
	svc, err := staffService(app.srv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("staff "+args[0], flag.ContinueOnError)
	fs.SetOutput(app.stderr)
	email := fs.String("email", "", "the email address of the person's account")
	role := fs.String("role", "", "roles, comma-separated: admin, id_checker (reviews photo ID checks), support")
	switch args[0] {
	case "set", "remove":
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		if *email == "" || fs.NArg() > 0 || (args[0] == "set") != (*role != "") {
			fmt.Fprint(app.stderr, staffUsage)
			if args[0] == "set" {
				return fmt.Errorf("%w: staff set needs -email and -role", errUsage)
			}
			return fmt.Errorf("%w: staff remove needs -email (and no -role)", errUsage)
		}
		acct, err := app.srv.Accounts.AccountByEmail(ctx, *email)
		if errors.Is(err, account.ErrNotFound) {
			return fmt.Errorf("no account has the email address %s", *email)
		}
		if err != nil {
			return err
		}
		r := *role
		if args[0] == "remove" {
			if _, ok, err := svc.StaffMember(ctx, acct.ID); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("%s is not staff", acct.Email)
			}
			r = ""
		}
		if err := svc.SetStaff(ctx, staffActor, acct.ID, strings.Split(r, ",")...); err != nil {
			return err
		}
		if r == "" {
			fmt.Fprintf(app.stdout, "%s is no longer staff\n", acct.Email)
		} else {
			fmt.Fprintf(app.stdout, "%s is now %s\n", acct.Email, r)
		}
		return nil
	case "list":
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
			return errUsage
		}
		members, err := svc.ListStaff(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(app.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EMAIL\tROLES\tACCOUNT")
		for _, m := range members {
			email := "(account deleted)"
			if acct, err := app.srv.Accounts.Account(ctx, m.AccountID); err == nil {
				email = acct.Email
			} else if !errors.Is(err, account.ErrNotFound) {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", email, strings.Join(m.Roles, ","), m.AccountID)
		}
		return tw.Flush()
	default:
		fmt.Fprint(app.stderr, staffUsage)
		return fmt.Errorf("%w: unknown staff subcommand %q", errUsage, args[0])
	}
}

// staffService returns the assembled server's identity service.
func staffService(srv *server.Server) (*identity.Service, error) {
	if srv.Identity == nil {
		return nil, errors.New("the server has no identity service")
	}
	return srv.Identity, nil
}
