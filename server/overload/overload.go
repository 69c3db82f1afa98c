// Package overload keeps the server honest when it cannot keep up: every
// request gets a deadline, so nothing waits for ever on a hung database or a
// full hashing queue, and admission control lets in only as many requests
// as the machine can serve at once, with a short queue behind them; the
// rest are refused at once with ErrBusy (a 503 "busy" answer with
// Retry-After) instead of queueing until every request is slow.
package overload

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v3"
)

// ErrBusy is returned by the admission middleware when a request finds the
// server full and the queue full, or waits in the queue for longer than
// the queue allows.
var ErrBusy = errors.New("server busy: request not admitted")

// Defaults of Config.
const (
	DefaultRequestTimeout = 8 * time.Second
	DefaultQueueWait      = time.Second
)

// Config sets the limits. Zero values take the defaults.
type Config struct {
	// RequestTimeout is every admitted request's deadline
	// (IDLINK_REQUEST_TIMEOUT): database statements, the wait for a
	// hashing slot and calls to other services all end with it.
	RequestTimeout time.Duration
	// MaxConcurrent requests run at once (IDLINK_MAX_CONCURRENT_REQUESTS);
	// default 16 per CPU.
	MaxConcurrent int
	// Queue is how many more may wait for a place (IDLINK_REQUEST_QUEUE);
	// 0 means as many as MaxConcurrent, a negative value no queue at all.
	// A request arriving with the queue full is refused at once.
	Queue int
	// QueueWait is the longest a request waits in the queue
	// (IDLINK_REQUEST_QUEUE_WAIT).
	QueueWait time.Duration
	// Exempt reports paths served outside both limits: probes, metrics,
	// static assets and long-lived streams, which hold a connection rather
	// than work.
	Exempt func(path string) bool
	// Slow reports paths whose requests carry large bodies (uploads): they
	// are admitted like the others but get SlowTimeout as their deadline.
	Slow        func(path string) bool
	SlowTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 16 * runtime.GOMAXPROCS(0)
	}
	if c.Queue < 0 {
		c.Queue = 0
	} else if c.Queue == 0 {
		c.Queue = c.MaxConcurrent
	}
	if c.QueueWait <= 0 {
		c.QueueWait = DefaultQueueWait
	}
	if c.QueueWait > c.RequestTimeout {
		c.QueueWait = c.RequestTimeout
	}
	if c.Exempt == nil {
		c.Exempt = func(string) bool { return false }
	}
	if c.Slow == nil {
		c.Slow = func(string) bool { return false }
	}
	if c.SlowTimeout < c.RequestTimeout {
		c.SlowTimeout = max(time.Minute, c.RequestTimeout)
	}
	return c
}

// Counter counts refused requests by reason ("queue_full", "queue_wait").
type Counter interface {
	Inc(reason string)
}

// Limiter admits requests. It is safe for concurrent use.
type Limiter struct {
	cfg     Config
	slots   chan struct{}
	waiting atomic.Int64
	shed    Counter
}

// New returns a Limiter; shed may be nil.
func New(cfg Config, shed Counter) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent), shed: shed}
}

// Config returns the limits in force (defaults filled in).
func (l *Limiter) Config() Config { return l.cfg }

// Running returns how many admitted requests hold a place now.
func (l *Limiter) Running() int { return len(l.slots) }

// Waiting returns how many requests wait in the queue now.
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Middleware admits each request (or refuses it with ErrBusy) and runs it
// with the request deadline in its context (c.Context()).
func (l *Limiter) Middleware() fiber.Handler {
	return func(c fiber.Ctx) error {
		if l.cfg.Exempt(c.Path()) {
			return c.Next()
		}
		release, err := l.Admit(c.Context())
		if err != nil {
			return err
		}
		defer release()
		timeout := l.cfg.RequestTimeout
		if l.cfg.Slow(c.Path()) {
			timeout = l.cfg.SlowTimeout
		}
		ctx, cancel := context.WithTimeout(c.Context(), timeout)
		defer cancel()
		c.SetContext(ctx)
		return c.Next()
	}
}

// Admit takes a place for one request, waiting in the queue when every
// place is taken and the queue has room, for at most the queue's wait (or
// until ctx ends). The caller must call release when the request is done.
func (l *Limiter) Admit(ctx context.Context) (release func(), err error) {
	release = func() { <-l.slots }
	select {
	case l.slots <- struct{}{}:
		return release, nil
	default:
	}
	if l.waiting.Add(1) > int64(l.cfg.Queue) {
		l.waiting.Add(-1)
		l.count("queue_full")
		return nil, fmt.Errorf("%w: %d running and %d waiting", ErrBusy, l.cfg.MaxConcurrent, l.cfg.Queue)
	}
	defer l.waiting.Add(-1)
	t := time.NewTimer(l.cfg.QueueWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		l.count("queue_wait")
		return nil, fmt.Errorf("%w: no place within %s", ErrBusy, l.cfg.QueueWait)
	case <-ctx.Done():
		l.count("queue_wait")
		return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

func (l *Limiter) count(reason string) {
	if l.shed != nil {
		l.shed.Inc(reason)
	}
}

// PathPrefixes returns an Exempt function matching paths equal to one of
// exact or starting with one of prefixes.
func PathPrefixes(exact []string, prefixes []string) func(string) bool {
	return func(p string) bool {
		for _, e := range exact {
			if p == e {
				return true
			}
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(p, pre) {
				return true
			}
		}
		return false
	}
}
