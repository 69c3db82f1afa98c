package push

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/idlink/idlink/migrations"
)

// PGBus carries events between replicas with PostgreSQL LISTEN/NOTIFY:
// Publish runs pg_notify on the shared pool, and one dedicated connection
// (lib/pq's Listener, which reconnects by itself) listens. Every replica,
// the publisher included, hears each event once. When the listening
// connection is lost, events published meanwhile are lost too: on
// reconnecting the bus calls every listener's Resync, and they re-read the
// database.
type PGBus struct {
	db      *sqlx.DB
	url     string
	channel string
	self    string // this bus's own channel and its listener's application_name (see BackendPID)
	log     *slog.Logger

	// MinReconnect and MaxReconnect bound the listener's reconnect delay.
	MinReconnect, MaxReconnect time.Duration

	mu        sync.RWMutex
	listeners []Listener

	resyncs  atomic.Int64
	listener atomic.Pointer[pq.Listener]
	queue    atomic.Pointer[chan []byte]
}

// NewPGBus returns a bus over db (for publishing) and a listening
// connection opened from dbURL. The channel is "idlink_push", suffixed
// with the URL's search_path when it names one, so that schemas sharing a
// database (tests) do not hear each other.
func NewPGBus(db *sqlx.DB, dbURL string, log *slog.Logger) (*PGBus, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, fmt.Errorf("push: database url: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	self := "idlink_bus_" + newID()
	// The listening connection carries its own name as application_name,
	// so it is identifiable in pg_stat_activity at all times (its query
	// column shows the last thing it ran, an empty ping after a while).
	q := u.Query()
	q.Set("application_name", self)
	u.RawQuery = q.Encode()
	return &PGBus{db: db, url: u.String(), channel: ChannelFor(q.Get("search_path")), self: self, log: log,
		MinReconnect: 100 * time.Millisecond, MaxReconnect: 5 * time.Second}, nil
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]`)

// ChannelFor returns the NOTIFY channel of a schema ("" for the default).
func ChannelFor(searchPath string) string {
	s := notIdent.ReplaceAllString(strings.ToLower(strings.TrimSpace(searchPath)), "_")
	if s == "" {
		return "idlink_push"
	}
	return ("idlink_push_" + s)[:min(len("idlink_push_"+s), 63)]
}

// Channel returns the channel the bus uses.
func (b *PGBus) Channel() string { return b.channel }

// Resyncs counts how often the listener reconnected and listeners were
// asked to resync.
func (b *PGBus) Resyncs() int64 { return b.resyncs.Load() }

// Subscribe adds a listener.
func (b *PGBus) Subscribe(l Listener) {
	b.mu.Lock()
	b.listeners = append(b.listeners, l)
	b.mu.Unlock()
}

// maxPayload keeps a batch below PostgreSQL's 8000-byte NOTIFY limit.
const maxPayload = 7000

// Publish notifies every replica of ev. While Run is running, events are
// queued and sent in batches (one NOTIFY carries as many events as fit)
// from one connection of the bus's own, so a burst of requests neither
// waits for the shared pool nor pays a round trip and a commit per event;
// otherwise (or when the queue is full) ev is sent at once.
func (b *PGBus) Publish(ctx context.Context, ev Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("push: encode event: %w", err)
	}
	if q := b.queue.Load(); q != nil {
		select {
		case *q <- payload:
			return nil
		default:
		}
	}
	return b.notify(ctx, b.db, payload)
}

// execer runs a statement: the pool or one connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (b *PGBus) notify(ctx context.Context, x execer, payload []byte) error {
	if _, err := x.ExecContext(ctx, `SELECT pg_notify($1, $2)`, b.channel, string(payload)); err != nil {
		return fmt.Errorf("push: notify: %w", err)
	}
	return nil
}

// publish sends queued events in batches until ctx ends.
func (b *PGBus) publish(ctx context.Context, q chan []byte) {
	var conn *sql.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	batch := make([]byte, 0, maxPayload+512)
	for {
		var first []byte
		select {
		case <-ctx.Done():
			return
		case first = <-q:
		}
		batch = append(batch[:0], '[')
		batch = append(batch, first...)
	fill:
		for len(batch) < maxPayload {
			select {
			case ev := <-q:
				if len(batch)+1+len(ev)+1 > maxPayload {
					// Send what we have, and start the next batch with ev.
					b.flush(ctx, &conn, append(batch, ']'))
					batch = append(batch[:0], '[')
					batch = append(batch, ev...)
					continue
				}
				batch = append(append(batch, ','), ev...)
			default:
				break fill
			}
		}
		b.flush(ctx, &conn, append(batch, ']'))
	}
}

// flush sends one batch on the bus's connection, opening it when needed.
// A batch that cannot be sent is lost; the database stays right and
// replicas catch up when they look (see Resync and Watch).
func (b *PGBus) flush(ctx context.Context, conn **sql.Conn, payload []byte) {
	for attempt := 0; attempt < 2; attempt++ {
		if *conn == nil {
			c, err := b.db.Conn(ctx)
			if err != nil {
				b.log.Error("push: bus publisher cannot connect", "err", err)
				return
			}
			*conn = c
		}
		err := b.notify(ctx, *conn, payload)
		if err == nil {
			return
		}
		_ = (*conn).Close()
		*conn = nil
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("push: bus publish failed", "err", err, "attempt", attempt+1)
	}
}

// Run listens until ctx ends.
func (b *PGBus) Run(ctx context.Context) error {
	l := pq.NewListener(b.url, b.MinReconnect, b.MaxReconnect, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventDisconnected:
			b.log.Warn("push: bus listener disconnected", "err", err)
		case pq.ListenerEventReconnected:
			b.log.Info("push: bus listener reconnected")
		case pq.ListenerEventConnectionAttemptFailed:
			b.log.Warn("push: bus listener cannot connect", "err", err)
		}
	})
	defer l.Close()
	if err := l.Listen(b.channel); err != nil {
		return fmt.Errorf("push: listen %s: %w", b.channel, err)
	}
	// A channel of this bus alone (nothing is sent on it): the name the
	// connection's first query shows in pg_stat_activity, beside its
	// application_name.
	if err := l.Listen(b.self); err != nil {
		return fmt.Errorf("push: listen %s: %w", b.self, err)
	}
	b.listener.Store(l)
	q := make(chan []byte, 8192)
	pctx, stopPublisher := context.WithCancel(ctx)
	published := make(chan struct{})
	go func() { defer close(published); b.publish(pctx, q) }()
	b.queue.Store(&q)
	defer func() {
		b.queue.Store(nil)
		stopPublisher()
		<-published
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil {
				// Reconnected: whatever was published meanwhile is lost.
				b.resyncs.Add(1)
				for _, ls := range b.snapshot() {
					ls.Resync()
				}
				continue
			}
			events, err := decodeEvents(n.Extra)
			if err != nil {
				b.log.Error("push: undecodable bus event", "err", err)
				continue
			}
			ls := b.snapshot()
			for _, ev := range events {
				for _, l := range ls {
					l.HandleEvent(ev)
				}
			}
		case <-ping.C:
			// Notices a dead connection even when nothing is published.
			go func() { _ = l.Ping() }()
		}
	}
}

// decodeEvents reads a notification: one event, or a batch (an array).
func decodeEvents(payload string) ([]Event, error) {
	if strings.HasPrefix(payload, "[") {
		var evs []Event
		err := json.Unmarshal([]byte(payload), &evs)
		return evs, err
	}
	var ev Event
	err := json.Unmarshal([]byte(payload), &ev)
	return []Event{ev}, err
}

// ListenerName is the application_name of the listening connection in
// pg_stat_activity.
func (b *PGBus) ListenerName() string { return b.self }

// BackendPID returns the process id of the listening connection's server
// backend (0 before Run has connected); tests use it to cut the
// connection.
func (b *PGBus) BackendPID(ctx context.Context) (int, error) {
	if b.listener.Load() == nil {
		return 0, nil
	}
	var pid int
	err := b.db.GetContext(ctx, &pid, `SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1`, b.self)
	if migrations.IsNoRows(err) {
		return 0, nil
	}
	return pid, err
}

func (b *PGBus) snapshot() []Listener {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.listeners
}
