package push

import (
	"context"
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
	log     *slog.Logger

	// MinReconnect and MaxReconnect bound the listener's reconnect delay.
	MinReconnect, MaxReconnect time.Duration

	mu        sync.RWMutex
	listeners []Listener

	resyncs  atomic.Int64
	listener atomic.Pointer[pq.Listener]
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
	return &PGBus{db: db, url: dbURL, channel: ChannelFor(u.Query().Get("search_path")), log: log,
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

// Publish notifies every replica of ev.
func (b *PGBus) Publish(ctx context.Context, ev Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("push: encode event: %w", err)
	}
	if _, err := b.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, b.channel, string(payload)); err != nil {
		return fmt.Errorf("push: notify: %w", err)
	}
	return nil
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
	b.listener.Store(l)
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
			var ev Event
			if err := json.Unmarshal([]byte(n.Extra), &ev); err != nil {
				b.log.Error("push: undecodable bus event", "err", err)
				continue
			}
			for _, ls := range b.snapshot() {
				ls.HandleEvent(ev)
			}
		case <-ping.C:
			// Notices a dead connection even when nothing is published.
			go func() { _ = l.Ping() }()
		}
	}
}

// BackendPID returns the process id of the listening connection's server
// backend (0 before Run has connected); tests use it to cut the
// connection.
func (b *PGBus) BackendPID(ctx context.Context) (int, error) {
	if b.listener.Load() == nil {
		return 0, nil
	}
	var pid int
	err := b.db.GetContext(ctx, &pid, `SELECT pid FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND query LIKE $1 ORDER BY backend_start DESC LIMIT 1`, "%"+b.channel+"%")
	return pid, err
}

func (b *PGBus) snapshot() []Listener {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.listeners
}
