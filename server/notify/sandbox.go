package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/secrets"
)

// ErrNotFound is returned by Sandbox.Latest when the outbox holds no
// matching message.
var ErrNotFound = errors.New("no such message in the outbox")

// Entry is one message stored in the sandbox outbox, as the development
// outbox page and tests read it.
type Entry struct {
	ID        string    `db:"id" json:"id"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	Channel   Channel   `db:"channel" json:"channel"`
	Recipient string    `db:"recipient" json:"recipient"`
	Kind      Kind      `db:"kind" json:"kind"`
	Text      string    `db:"body" json:"text"`
	Link      string    `db:"link" json:"link"`
	Code      string    `db:"code" json:"code"`
}

// DefaultListLimit is how many entries List returns when asked for a
// non-positive number.
const DefaultListLimit = 100

// Sandbox is a Sender that delivers nothing: it stores each message in the
// outbox table, where developers and tests read links and codes. It is safe
// for concurrent use.
type Sandbox struct {
	db  *sqlx.DB
	now func() time.Time
}

var _ Sender = (*Sandbox)(nil)

// NewSandbox returns a Sandbox storing into db; now is the clock (time.Now
// when nil).
func NewSandbox(db *sqlx.DB, now func() time.Time) *Sandbox {
	if now == nil {
		now = time.Now
	}
	return &Sandbox{db: db, now: now}
}

// Send validates m and stores it in the outbox. A database failure wraps
// ErrSendFailed (and the underlying error).
func (s *Sandbox) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	e := Entry{
		ID:        secrets.NewID(),
		CreatedAt: s.now().UTC(),
		Channel:   m.Channel,
		Recipient: m.To,
		Kind:      m.Kind,
		Text:      m.Text,
		Link:      m.Link,
		Code:      m.Code,
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO outbox
		(id, created_at, channel, recipient, kind, body, link, code)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		e.ID, e.CreatedAt, string(e.Channel), e.Recipient, string(e.Kind), e.Text, e.Link, e.Code)
	if err != nil {
		return fmt.Errorf("%w: store %s %s in outbox: %w", ErrSendFailed, m.Channel, m.Kind, err)
	}
	return nil
}

// List returns the most recent messages, newest first; limit <= 0 means
// DefaultListLimit.
func (s *Sandbox) List(ctx context.Context, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var es []Entry
	err := s.db.SelectContext(ctx, &es, s.db.Rebind(`SELECT id, created_at, channel, recipient, kind, body, link, code
		FROM outbox ORDER BY created_at DESC, id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	for i := range es {
		es[i].CreatedAt = es[i].CreatedAt.UTC()
	}
	return es, nil
}

// Latest returns the newest message of a kind sent to recipient, or
// ErrNotFound.
func (s *Sandbox) Latest(ctx context.Context, recipient string, kind Kind) (Entry, error) {
	var e Entry
	err := s.db.GetContext(ctx, &e, s.db.Rebind(`SELECT id, created_at, channel, recipient, kind, body, link, code
		FROM outbox WHERE recipient = ? AND kind = ? ORDER BY created_at DESC, id DESC LIMIT 1`),
		recipient, string(kind))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("latest %s message: %w", kind, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("latest %s message: %w", kind, err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return e, nil
}
