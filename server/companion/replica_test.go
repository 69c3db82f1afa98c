package companion_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/push"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/secrets"
	"github.com/idlink/idlink/server/servertest"
)

// replicaEnv marks a re-executed test binary that serves as a second
// server process instead of running tests.
const replicaEnv = "IDLINK_TEST_REPLICA"

func TestMain(m *testing.M) {
	if os.Getenv(replicaEnv) == "1" {
		os.Exit(runReplica())
	}
	os.Exit(m.Run())
}

// runReplica serves the configuration in the environment until SIGTERM.
func runReplica() int {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica config:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := server.New(ctx, cfg, server.Options{PasswordParams: servertest.FastPasswords, Logger: server.NewLogger("warn")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica listen:", err)
		return 1
	}
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "replica serve:", err)
		return 1
	}
	return 0
}

// startReplica starts a second server process on the same database and
// secret key, serving the same issuer (as replicas behind one address
// do), and returns its base URL.
func startReplica(t *testing.T, dbURL, issuer string, key []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), replicaEnv+"=1",
		"IDLINK_DATABASE_URL="+dbURL, "IDLINK_ISSUER="+issuer, "IDLINK_ADDR="+addr,
		"IDLINK_SECRET_KEY="+hex.EncodeToString(key), "IDLINK_DATA_DIR="+t.TempDir(),
		"IDLINK_WEBAUTHN_RP_ID="+webauthnEnv["IDLINK_WEBAUTHN_RP_ID"], "IDLINK_WEBAUTHN_ORIGINS="+webauthnEnv["IDLINK_WEBAUTHN_ORIGINS"],
		"IDLINK_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "replica ready")
	return base
}

// openStreamAt is openStream against another replica's address.
func (e *env) openStreamAt(p *phone, base string) *stream {
	e.t.Helper()
	h := http.Header{"Authorization": {e.deviceAuth(p, "/app/v1/stream")}}
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/app/v1/stream", h)
	require.NoError(e.t, err)
	_ = resp.Body.Close()
	return e.follow(conn)
}

func TestTwoServerProcessesApprove(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	key := secrets.NewKey()
	vars := map[string]string{"IDLINK_SECRET_KEY": hex.EncodeToString(key)}
	for k, v := range webauthnEnv {
		vars[k] = v
	}
	e := startWith(t, dbURL, vars, server.Options{}) // replica A, in this process
	replicaB := startReplica(t, dbURL, e.s.URL, key) // replica B, another process

	p := newPhone(t)
	e.enrol(p)
	r := e.newRP()
	st := e.openStreamAt(p, replicaB) // the phone's socket is held by B

	b, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`) // the browser logs in through A
	n := number(t, pg)
	v := *st.next(t, push.MsgApprovalRequest).Approval
	st.ack(t, v.ID)
	require.Eventually(t, func() bool { return e.auditCount("push.delivered", "websocket") == 1 }, 10*time.Second, 20*time.Millisecond,
		"A hears that the phone on B acknowledged")

	// The phone's answer goes to B as well.
	path := "/app/v1/approvals/" + v.ID + "/answer"
	status, out := e.callAt(replicaB, http.MethodPost, path, e.deviceAuth(p, path),
		map[string]any{"decision": "approve", "number": n, "assertion": p.approval(v, n)})
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "P0.Cp.Cd", e.finish(r, b, b.Submit(pg, "/login/approve", nil)))
}

// TestStreamOnItsOwnListener: with IDLINK_STREAM_ADDR the stream is also
// served from a listener of its own (small HTTP buffers), and requests
// made through the main address reach a phone connected there.
func TestStreamOnItsOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	vars := map[string]string{"IDLINK_STREAM_ADDR": addr}
	for k, v := range webauthnEnv {
		vars[k] = v
	}
	e := startWith(t, dbtest.SQLiteURL(t), vars, server.Options{})
	p := newPhone(t)
	e.enrol(p)
	r := e.newRP()
	var st *stream
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	st = e.openStreamAt(p, "http://"+addr)
	_, pg, _ := e.loginUntilPhone(r, `["P0.Cp.Cd"]`)
	number(t, pg)
	require.NotEmpty(t, st.next(t, push.MsgApprovalRequest).Approval.ID)
	// Only the stream is served there.
	resp, err := http.Get("http://" + addr + "/login")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
