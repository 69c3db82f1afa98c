package overload_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/stretchr/testify/require"

	"github.com/idlink/idlink/server/overload"
)

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Inc(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[reason]++
}

func (c *counter) get(reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[reason]
}

// serve runs app on a local port and returns its base URL.
func serve(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String()
}

func newApp(l *overload.Limiter, h fiber.Handler) *fiber.App {
	app := fiber.New(fiber.Config{ErrorHandler: func(c fiber.Ctx, err error) error {
		if errors.Is(err, overload.ErrBusy) {
			c.Set(fiber.HeaderRetryAfter, "1")
			return c.SendStatus(http.StatusServiceUnavailable)
		}
		return c.SendStatus(http.StatusInternalServerError)
	}})
	app.Use(l.Middleware())
	app.Get("/work", h)
	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	return app
}

// Many requests at once against a full server: exactly the running ones
// and the queued ones are served, every other one is refused at once with
// 503 and Retry-After, and the probe stays outside the limit.
func TestShedsBeyondLimitAndQueue(t *testing.T) {
	for _, tc := range []struct{ limit, queue, clients int }{
		{limit: 4, queue: 3, clients: 60},
		{limit: 1, queue: 0, clients: 30},
		{limit: 8, queue: 16, clients: 100},
	} {
		t.Run("", func(t *testing.T) {
			shed := &counter{}
			queue := tc.queue
			if queue == 0 {
				queue = -1 // no queue at all
			}
			l := overload.New(overload.Config{MaxConcurrent: tc.limit, Queue: queue, QueueWait: time.Hour,
				Exempt: overload.PathPrefixes([]string{"/healthz"}, nil)}, shed)
			gate := make(chan struct{})
			var inHandler atomic.Int32
			base := serve(t, newApp(l, func(c fiber.Ctx) error {
				inHandler.Add(1)
				<-gate
				return c.SendString("done")
			}))

			var wg sync.WaitGroup
			var ok, busy, other atomic.Int32
			var retryAfter atomic.Int32
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: tc.clients}}
			for range tc.clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := client.Get(base + "/work")
					if err != nil {
						other.Add(1)
						return
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						ok.Add(1)
					case http.StatusServiceUnavailable:
						busy.Add(1)
						if resp.Header.Get(fiber.HeaderRetryAfter) != "" {
							retryAfter.Add(1)
						}
					default:
						other.Add(1)
					}
				}()
			}
			wantBusy := tc.clients - tc.limit - tc.queue
			require.Eventually(t, func() bool {
				return int(busy.Load()) == wantBusy && l.Running() == tc.limit && l.Waiting() == tc.queue
			}, time.Minute, 5*time.Millisecond)
			require.Equal(t, tc.limit, int(inHandler.Load()), "no more than the limit run at once")

			// The probe is not held back by the full server.
			resp, err := client.Get(base + "/healthz")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)

			close(gate)
			wg.Wait()
			require.Equal(t, tc.limit+tc.queue, int(ok.Load()), "the running and the queued are served")
			require.Equal(t, wantBusy, int(busy.Load()))
			require.Equal(t, wantBusy, int(retryAfter.Load()))
			require.Zero(t, other.Load())
			require.Equal(t, wantBusy, shed.get("queue_full"))
			require.Zero(t, l.Running())
			require.Zero(t, l.Waiting())
		})
	}
}

// A queued request that does not get a place within the queue's wait is
// refused.
func TestQueueWaitIsBounded(t *testing.T) {
	shed := &counter{}
	l := overload.New(overload.Config{MaxConcurrent: 1, Queue: 5, QueueWait: 20 * time.Millisecond}, shed)
	release, err := l.Admit(context.Background())
	require.NoError(t, err)
	defer release()
	var wg sync.WaitGroup
	var busy atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Admit(context.Background()); errors.Is(err, overload.ErrBusy) {
				busy.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(5), busy.Load())
	require.Equal(t, 5, shed.get("queue_wait"))
	require.Zero(t, l.Waiting())
}

// An admitted request runs with the request deadline: work that waits on
// its context ends with DeadlineExceeded instead of waiting for ever.
func TestRequestHasDeadline(t *testing.T) {
	l := overload.New(overload.Config{RequestTimeout: 30 * time.Millisecond}, nil)
	var gotDeadline atomic.Bool
	var gotErr atomic.Value
	base := serve(t, newApp(l, func(c fiber.Ctx) error {
		_, has := c.Context().Deadline()
		gotDeadline.Store(has)
		<-c.Context().Done()
		gotErr.Store(c.Context().Err())
		return c.Context().Err()
	}))
	resp, err := http.Get(base + "/work")
	require.NoError(t, err)
	resp.Body.Close()
	require.True(t, gotDeadline.Load())
	require.ErrorIs(t, gotErr.Load().(error), context.DeadlineExceeded)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
}
