package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/migrations/dbtest"
	"github.com/idlink/idlink/server"
	"github.com/idlink/idlink/server/config"
	"github.com/idlink/idlink/server/notify"
	"github.com/idlink/idlink/server/servertest"
)

// A shutdown lets a request that is already running finish.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"IDLINK_DATA_DIR": dir, "IDLINK_LOG_LEVEL": "error"}[k]
	})
	require.NoError(t, err)
	srv, err := server.New(context.Background(), cfg, server.Options{})
	require.NoError(t, err)
	defer srv.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	srv.App.Get("/test/slow", func(c fiber.Ctx) error {
		close(started)
		<-release
		return c.SendString("finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/test/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	select {
	case <-started:
	case r := <-got:
		t.Fatalf("the slow request ended early: %+v", r)
	}
	cancel() // SIGTERM arrives while the request is in flight
	select {
	case err := <-served:
		t.Fatalf("server stopped before the in-flight request finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-got
	require.NoError(t, r.err)
	require.Equal(t, "finished", r.body)
	require.NoError(t, <-served)
	_, err = net.Dial("tcp", ln.Addr().String())
	require.Error(t, err, "no new connections after shutdown")
}

// failingSender is a notification provider that is down.
type failingSender struct{}

func (failingSender) Send(context.Context, notify.Message) error {
	return fmt.Errorf("%w: 503 from provider", notify.ErrSendFailed)
}

func TestProviderFailureIsShownAndLosesNothing(t *testing.T) {
	s := servertest.Start(t, dbtest.SQLiteURL(t), nil, server.Options{Sender: failingSender{}})
	b := s.NewBrowser(t)
	p := b.Get("/create-account")
	p = b.Submit(p, "/create-account/email", map[string]string{"email": "down@example.org"})
	p = b.Submit(p, "/create-account/password", map[string]string{"password": pw})
	got := b.Submit(p, "/create-account/terms", map[string]string{"terms": "accept"})
	require.Equal(t, []string{"We could not send the email. Try again."}, got.Errors())
	// Nothing was lost: the journey is still at the terms step, ready to retry.
	require.Equal(t, "Accept the terms of use", b.Get("/create-account/terms").H1())
	n, err := s.Audit.Count(context.Background(), "", "email.send_failed", "failure")
	require.NoError(t, err)
	require.Equal(t, 1, n, "the failure is an audit event")
}
