// Command idlink-companion simulates the idlink companion app (a phone
// application such as the NHS App) against a development-mode server. Its
// software keys, standing for the phone's secure hardware, are kept in a
// JSON file (mode 0600): the device key (P-256) that signs the app's API
// calls, and the FIDO credential of the "platform authenticator" with its
// signature counter (github.com/descope/virtualwebauthn).
//
//	idlink-companion enrol -url http://127.0.0.1:8080 -email sam@example.org -password '…' -phone +447700900123
//	    logs in through the OIDC pages as the public client idlink-companion
//	    (password, then the texted code read from the development outbox),
//	    gets an access token with the device_enrolment scope, and registers
//	    the device (POST /app/v1/enrolment/begin, POST /app/v1/devices).
//	idlink-companion whoami
//	    GET /app/v1/device, authenticated by a device JWT.
//	idlink-companion login -client-id idlink-demo-rp -redirect-uri http://localhost:8081/callback -key-file ./data/demo-client-key.pem
//	    a biometric login for a relying party: POST /fido/authenticate/begin,
//	    the assertion as fido_auth_response on /authorize, then the code
//	    exchanged with private_key_jwt using the relying party's key; prints
//	    the verified ID token claims as JSON.
//	idlink-companion listen [-auto deny|report|approve -after 2s -number NN] [-once]
//	    holds the phone's stream (GET /app/v1/stream, a WebSocket), prints
//	    each login request (who, where, what, until when) as it arrives and
//	    acknowledges it at once. Interactively it then reads a line: the
//	    two-digit number the browser shows approves (a FIDO assertion over
//	    the approval challenge; the state file is saved as the counter
//	    moved), "n" denies, "x" reports "this wasn't me". With -auto it
//	    answers by itself after -after; -auto approve needs -number, which
//	    the person reads from the browser's "Check your phone" page (the
//	    phone is never sent it). It reconnects with back-off (0.5 s doubling
//	    to 30 s, with jitter) when the socket closes, and stops when the
//	    device has been removed. -once stops after one answered request.
//	idlink-companion load -devices devices.json [-procs P] [-url U | -urls A,B] [-source-ips 127.0.0.2,…]
//	                      [-bench-rate R [-bench-url U] -answer none|deny|approve] [-server-pid PID]
//	    load test with the devices written by "idlink dev seed-devices": one
//	    socket per device (-concurrency connects at a time, from the
//	    -source-ips in turn), every request acknowledged and its delivery
//	    latency (receipt − created_at) recorded; with -bench-rate the
//	    development endpoint POST /dev/push/bench creates a request per
//	    account at that rate once all sockets are connected (-bench-url may
//	    be another replica) and reports each number, so -answer approve
//	    approves with the right number. Prints a progress line every 5 s
//	    and a JSON report at the end; -procs spreads the sockets over
//	    several processes (at most 6,000 each) and merges their reports.
//
// It only talks to the URL it is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if cmd := os.Args[1]; cmd != "listen" && cmd != "load" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	err := run(ctx, os.Args[1], os.Args[2:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlink-companion:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: idlink-companion enrol|whoami|login|listen|load [flags] (-h for the flags of each)")
}

// run executes one subcommand; stdin gives the security code when it is
// not read from the development outbox.
func run(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	stateFile := fs.String("state", "idlink-companion.json", "file keeping the simulated phone's keys (created with mode 0600)")
	switch cmd {
	case "enrol":
		return runEnrol(ctx, fs, stateFile, args, stdin, stdout)
	case "whoami":
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		st, err := loadState(*stateFile)
		if err != nil {
			return err
		}
		out, err := whoami(ctx, st)
		if err != nil {
			return err
		}
		return printJSON(stdout, out)
	case "login":
		return runLogin(ctx, fs, stateFile, args, stdout)
	case "listen":
		o := listenOptions{In: stdin, Out: stdout}
		fs.StringVar(&o.Auto, "auto", "", "answer by itself: deny, report or approve (default: read each answer from standard input)")
		fs.DurationVar(&o.After, "after", 2*time.Second, "how long an automatic answer waits")
		fs.IntVar(&o.Number, "number", 0, "the two-digit number the browser shows, for -auto approve (read it from the browser's page)")
		fs.BoolVar(&o.Once, "once", false, "stop after one answered request")
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		st, err := loadState(*stateFile)
		if err != nil {
			return err
		}
		o.StateFile = *stateFile
		return listen(ctx, st, o)
	case "load":
		o := loadOptions{Progress: os.Stderr, Stdin: stdin}
		finish := loadFlags(fs, &o)
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		finish()
		return runLoad(ctx, o, stdout)
	}
	return fmt.Errorf("%w: unknown command %q (enrol, whoami, login, listen or load)", errUsage, cmd)
}

// runEnrol is the enrol command: sign in, enrol the simulated phone and
// keep its keys in stateFile.
func runEnrol(ctx context.Context, fs *flag.FlagSet, stateFile *string, args []string, stdin io.Reader, stdout io.Writer) error {
	o := enrolOptions{}
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "base URL (issuer) of a development-mode idlink server")
	fs.StringVar(&o.Email, "email", "", "the account's email address")
	fs.StringVar(&o.Password, "password", "", "the account's password")
	fs.StringVar(&o.Phone, "phone", "", "the account's mobile number in E.164 form (+447700900123), to read the code from the outbox")
	fromOutbox := fs.Bool("phone-code-from-outbox", true, "read the texted security code from the development outbox (otherwise from standard input)")
	fs.StringVar(&o.Name, "name", "Simulated phone", "device name")
	fs.StringVar(&o.Platform, "platform", "android", "device platform: android, ios or other")
	fs.StringVar(&o.PushToken, "push-token", "", "push token to register (optional)")
	fs.StringVar(&o.Origin, "origin", "", "WebAuthn origin the authenticator reports (default: the origin of -url)")
	fs.StringVar(&o.RPID, "rp-id", "", "WebAuthn relying party id (default: the host of -url)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if o.Email == "" || o.Password == "" || (*fromOutbox && o.Phone == "") {
		return fmt.Errorf("%w: enrol needs -email, -password and -phone", errUsage)
	}
	if !*fromOutbox {
		o.CodeFrom = stdin
	}
	st, err := enrol(ctx, o)
	if err != nil {
		return err
	}
	if err := st.save(*stateFile); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "enrolled device %s; keys in %s\n", st.DeviceID, *stateFile)
	return err
}

// runLogin is the login command: a relying party's login answered by the
// simulated phone's fido_auth_response.
func runLogin(ctx context.Context, fs *flag.FlagSet, stateFile *string, args []string, stdout io.Writer) error {
	o := loginOptions{}
	fs.StringVar(&o.ClientID, "client-id", "idlink-demo-rp", "the relying party's client_id")
	fs.StringVar(&o.RedirectURI, "redirect-uri", "http://localhost:8081/callback", "the relying party's registered redirect URI")
	fs.StringVar(&o.KeyFile, "key-file", "./data/demo-client-key.pem", "the relying party's RSA private key (PEM), for private_key_jwt")
	fs.StringVar(&o.Scope, "scope", "openid", "scopes to ask for")
	fs.StringVar(&o.VTR, "vtr", `["P0.Cm"]`, "vectors of trust to ask for")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	st, err := loadState(*stateFile)
	if err != nil {
		return err
	}
	claims, err := login(ctx, st, o)
	// The counter moved even when the server refused the assertion.
	if serr := st.save(*stateFile); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, claims)
}
