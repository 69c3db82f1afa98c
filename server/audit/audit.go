// Package audit records security-relevant events (who, what, when, from
// where, and how it ended) in the database, where an operator can read them
// and the account page can show a person their recent activity.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/server/secrets"
)

// Outcome says how the audited action ended.
type Outcome string

// Outcomes of audited actions.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Event is one audited action.
type Event struct {
	ID        string    `db:"id" json:"id"`
	At        time.Time `db:"at" json:"at"`
	Type      string    `db:"type" json:"type"`
	Outcome   Outcome   `db:"outcome" json:"outcome"`
	AccountID *string   `db:"account_id" json:"account_id,omitempty"`
	IP        string    `db:"ip" json:"ip"`
	UserAgent string    `db:"user_agent" json:"user_agent"`
	RequestID string    `db:"request_id" json:"request_id"`
	// Detail is a JSON object with event-specific facts (never secrets).
	Detail string `db:"detail" json:"detail,omitempty"`
}

// Actor describes where a request came from; handlers build it from the
// HTTP request and pass it down so that stores need not know about HTTP.
type Actor struct {
	IP        string
	UserAgent string
	RequestID string
}

// Log writes audit events. It is safe for concurrent use.
type Log struct {
	db  *sqlx.DB
	now func() time.Time
}

// New returns a Log writing to db; now is the clock (time.Now when nil).
func New(db *sqlx.DB, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{db: db, now: now}
}

// Record stores one event. accountID may be empty when the action is not
// tied to a known account (an unknown email address, say). detail is
// marshalled to JSON and may be nil.
func (l *Log) Record(ctx context.Context, a Actor, typ string, outcome Outcome, accountID string, detail map[string]any) error {
	return l.RecordIn(ctx, l.db, a, typ, outcome, accountID, detail)
}

// RecordIn is Record inside the caller's transaction (or on any other
// handle), so that the event is kept exactly when what it records is.
func (l *Log) RecordIn(ctx context.Context, e sqlx.ExtContext, a Actor, typ string, outcome Outcome, accountID string, detail map[string]any) error {
	ev := Event{
		ID:        secrets.NewID(),
		At:        l.now().UTC(),
		Type:      typ,
		Outcome:   outcome,
		IP:        a.IP,
		UserAgent: truncate(a.UserAgent, 512),
		RequestID: a.RequestID,
	}
	if accountID != "" {
		ev.AccountID = &accountID
	}
	if len(detail) > 0 {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("audit detail: %w", err)
		}
		ev.Detail = string(b)
	}
	_, err := sqlx.NamedExecContext(ctx, e, `INSERT INTO audit_events
		(id, at, type, outcome, account_id, ip, user_agent, request_id, detail)
		VALUES (:id, :at, :type, :outcome, :account_id, :ip, :user_agent, :request_id, :detail)`, ev)
	if err != nil {
		return fmt.Errorf("record audit event %s: %w", typ, err)
	}
	return nil
}

// ForAccount returns the most recent events of an account, newest first.
func (l *Log) ForAccount(ctx context.Context, accountID string, limit int) ([]Event, error) {
	var evs []Event
	err := l.db.SelectContext(ctx, &evs, l.db.Rebind(`SELECT id, at, type, outcome, account_id, ip, user_agent, request_id, detail
		FROM audit_events WHERE account_id = ? ORDER BY at DESC, id DESC LIMIT ?`), accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return evs, nil
}

// Count returns how many events of a type (and outcome, when not empty) an
// account has; tests and operators use it.
func (l *Log) Count(ctx context.Context, accountID, typ string, outcome Outcome) (int, error) {
	q := `SELECT COUNT(*) FROM audit_events WHERE type = ?`
	args := []any{typ}
	if accountID != "" {
		q += ` AND account_id = ?`
		args = append(args, accountID)
	}
	if outcome != "" {
		q += ` AND outcome = ?`
		args = append(args, string(outcome))
	}
	var n int
	if err := l.db.GetContext(ctx, &n, l.db.Rebind(q), args...); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
