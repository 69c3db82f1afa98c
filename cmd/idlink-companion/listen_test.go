package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/servertest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in other
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// answerAfter is how long the simulated phone waits before answering
// automatically (see TestListen).
const answerAfter = "1s"

// waitFor waits until out holds want n times.
func waitFor(t *testing.T, out *syncBuffer, want string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Count(out.String(), want) >= n }, 20*time.Second, 10*time.Millisecond,
		"waiting for %q ×%d in:\n%s", want, n, out.String())
}

// enrolPhone creates an account through the pages and enrols the
// simulated phone for it; it returns the state file.
func enrolPhone(t *testing.T, s *servertest.Server, email, pw, phone string) string {
	t.Helper()
	s.CreateAccount(t, s.NewBrowser(t), email, pw, phone)
	stateFile := filepath.Join(t.TempDir(), "phone.json")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), "enrol", []string{"-state", stateFile, "-url", s.URL, "-email", email, "-password", pw,
		"-phone", servertest.E164(t, phone), "-rp-id", servertest.WebAuthnRPID, "-origin", servertest.WebAuthnOrigin}, nil, &out))
	return stateFile
}

// startListen runs listen in the background; the returned channel gives
// its result.
func startListen(ctx context.Context, out *syncBuffer, args ...string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- run(ctx, "listen", args, strings.NewReader(""), out) }()
	return done
}

// loginToApprove logs in with the password in a new browser and returns
// the "Check your phone" page and its number.
func loginToApprove(t *testing.T, s *servertest.Server, email, pw string) (*servertest.Browser, *servertest.Page, int) {
	t.Helper()
	b := s.NewBrowser(t)
	p := b.Get("/login")
	p = b.Submit(p, "/login", map[string]string{"email": email, "password": pw})
	require.Equal(t, "Check your phone", p.H1(), p.Errors())
	n, err := strconv.Atoi(p.Text("approval-number"))
	require.NoError(t, err)
	return b, p, n
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not end")
		return nil
	}
}

// TestListen answers logins made in a browser from the phone's stream:
// approve with the number the browser shows, deny, and "this wasn't me".
func TestListen(t *testing.T) {
	dbtest.EachURL(t, func(t *testing.T, dbURL string) {
		s := servertest.Start(t, dbURL, nil, server.Options{})
		const email, pw, phone = "listen@example.org", "correct horse battery staple", "07700 900457"
		stateFile := enrolPhone(t, s, email, pw, phone)
		before, err := loadState(stateFile)
		require.NoError(t, err)

		for _, tc := range []struct {
			auto     string
			wantH1   string
			wantSaid string
		}{
			{"approve", "", "the request is approved"},
			{"deny", "The login was not approved", "the request is denied"},
			{"", "The login was not approved", "the request is denied"},         // "n" typed
			{"report", "The login was not approved", "the request is reported"}, // last: it pauses approvals
		} {
			name := tc.auto
			if name == "" {
				name = "typed"
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				out := &syncBuffer{}
				// The phone answers a second after the push, long after the
				// browser has its "Check your phone" page: answered within
				// milliseconds, the browser could find the request already
				// closed.
				args := []string{"-state", stateFile, "-auto", tc.auto, "-after", answerAfter, "-once"}
				if tc.auto == "" {
					keys, typing := io.Pipe()
					defer typing.Close()
					done := make(chan error, 1)
					go func() {
						done <- run(ctx, "listen", []string{"-state", stateFile, "-once"}, keys, out)
					}()
					waitFor(t, out, "connected as device", 1)
					b, p, _ := loginToApprove(t, s, email, pw)
					waitFor(t, out, "type the number the browser shows", 1)
					_, err := io.WriteString(typing, "5\nn\n") // a wrong entry first
					require.NoError(t, err)
					require.NoError(t, wait(t, done), out.String())
					require.Contains(t, out.String(), "type the two-digit number")
					require.Contains(t, out.String(), tc.wantSaid)
					p = b.Submit(p, "/login/approve", nil)
					require.Equal(t, tc.wantH1, p.H1())
					return
				}
				if tc.auto != "approve" {
					done := startListen(ctx, out, args...)
					waitFor(t, out, "connected as device", 1)
					b, p, _ := loginToApprove(t, s, email, pw)
					require.NoError(t, wait(t, done), out.String())
					require.Contains(t, out.String(), tc.wantSaid)
					p = b.Submit(p, "/login/approve", nil)
					require.Equal(t, tc.wantH1, p.H1())
					return
				}
				// The person reads the number in the browser before
				// typing it on the phone.
				first := startListen(ctx, out, "-state", stateFile)
				waitFor(t, out, "connected as device", 1)
				b, p, n := loginToApprove(t, s, email, pw)
				waitFor(t, out, "from ", 1) // the request itself, not "waiting for login requests"

				cancel()
				require.NoError(t, wait(t, first))

				out2 := &syncBuffer{}
				ctx2, cancel2 := context.WithCancel(context.Background())
				defer cancel2()
				done := startListen(ctx2, out2, append(args, "-number", strconv.Itoa(n))...)
				require.NoError(t, wait(t, done), out2.String())
				require.Contains(t, out2.String(), tc.wantSaid)
				p = b.Submit(p, "/login/approve", nil)
				require.Equal(t, http.StatusOK, p.Status)
				require.NotEqual(t, "Check your phone", p.H1())
				require.NotEqual(t, "Enter the security code", p.H1())
				after, err := loadState(stateFile)
				require.NoError(t, err)
				require.Greater(t, after.Credential.Counter, before.Credential.Counter, "the state is saved")
			})
		}

		// The device is removed in the person's settings: the socket is
		// closed with 1008 and listen ends; it cannot connect again (401).
		ctx := context.Background()
		dev, err := s.Devices.Get(ctx, before.DeviceID)
		require.NoError(t, err)
		out := &syncBuffer{}
		done := startListen(ctx, out, "-state", stateFile)
		waitFor(t, out, "connected as device", 1)
		require.NoError(t, s.Devices.Remove(ctx, dev.AccountID, dev.ID))
		s.Push.DeviceRemoved(ctx, dev.ID)
		require.ErrorIs(t, wait(t, done), errDeviceGone)
		err = run(ctx, "listen", []string{"-state", stateFile}, nil, &bytes.Buffer{})
		require.ErrorIs(t, err, errDeviceGone)
		require.ErrorContains(t, err, "device_removed")

		// Bad flags.
		for _, args := range [][]string{{"-auto", "approve"}, {"-auto", "maybe"}} {
			err := run(context.Background(), "listen", append([]string{"-state", stateFile}, args...), nil, &bytes.Buffer{})
			require.ErrorIs(t, err, errUsage)
		}
	})
}

// startAt runs a development server on addr until the returned function
// stops it (the way a deployment restarts a replica).
func startAt(t *testing.T, addr, dbURL, dataDir string) (*server.Server, func()) {
	t.Helper()
	vars := map[string]string{
		"IDLINK_DATA_DIR": dataDir, "IDLINK_DATABASE_URL": dbURL, "IDLINK_ISSUER": "http://" + addr, "IDLINK_ADDR": addr,
		"IDLINK_LOG_LEVEL": "error", "IDLINK_WEBAUTHN_RP_ID": servertest.WebAuthnRPID, "IDLINK_WEBAUTHN_ORIGINS": servertest.WebAuthnOrigin,
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	require.NoError(t, err)
	srv, err := server.New(context.Background(), cfg, server.Options{PasswordParams: servertest.FastPasswords, Logger: server.NewLogger("error")})
	require.NoError(t, err)
	var ln net.Listener
	require.Eventually(t, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("server stopped with %v", err)
			}
			_ = srv.Close()
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

// TestListenReconnects keeps listening across a server restart: the
// server closes the socket (1001), listen reconnects with back-off and
// answers a request created after the restart.
func TestListenReconnects(t *testing.T) {
	dbURL, dataDir := dbtest.SQLiteURL(t), t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	srv, stop := startAt(t, addr, dbURL, dataDir)
	s := &servertest.Server{Server: srv, URL: "http://" + addr}
	const email, pw, phone = "restart@example.org", "correct horse battery staple", "07700 900458"
	stateFile := enrolPhone(t, s, email, pw, phone)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := startListen(ctx, out, "-state", stateFile, "-auto", "deny", "-after", answerAfter, "-once")
	waitFor(t, out, "connected as device", 1)
	stop()
	waitFor(t, out, "going away (1001)", 1)

	srv2, _ := startAt(t, addr, dbURL, dataDir)
	s2 := &servertest.Server{Server: srv2, URL: "http://" + addr}
	waitFor(t, out, "connected as device", 2)
	b, p, _ := loginToApprove(t, s2, email, pw)
	require.NoError(t, wait(t, done), out.String())
	require.Contains(t, out.String(), "the request is denied")
	p = b.Submit(p, "/login/approve", nil)
	require.Equal(t, "The login was not approved", p.H1())
}
