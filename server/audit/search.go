package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Filter selects audit events for the back office's search. Empty fields
// select everything.
type Filter struct {
	// AccountID is the person the events are about.
	AccountID string
	// Type is an event type, or a prefix ending with a dot ("support.").
	Type string
	// From and To bound the time (From inclusive, To exclusive).
	From, To time.Time
	// IP is the address the request came from.
	IP string
	// Staff is the account id of the staff member the event names (the
	// "staff" key of its detail).
	Staff string
	// ClientID is the relying party the event names (the "client_id" key
	// of its detail).
	ClientID string
	// Outcome selects successes or failures only.
	Outcome Outcome
}

// Cursor is where a page of results continues: the last event shown.
type Cursor struct {
	At time.Time
	ID string
}

// Search returns up to limit events matching f, newest first, strictly
// after the cursor (nil: from the newest). A full page means there may be
// more: pass its last event as the next cursor.
func (l *Log) Search(ctx context.Context, f Filter, after *Cursor, limit int) ([]Event, error) {
	where, args, err := f.where()
	if err != nil {
		return nil, err
	}
	q := `SELECT id, at, type, outcome, account_id, ip, user_agent, request_id, detail FROM audit_events WHERE ` + where
	if after != nil {
		q += ` AND (at < ? OR (at = ? AND id < ?))`
		args = append(args, after.At.UTC(), after.At.UTC(), after.ID)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	var evs []Event
	if err := l.db.SelectContext(ctx, &evs, l.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("audit search: %w", err)
	}
	return evs, nil
}

// CountMatching returns how many events match f.
func (l *Log) CountMatching(ctx context.Context, f Filter) (int, error) {
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	var n int
	if err := l.db.GetContext(ctx, &n, l.db.Rebind(`SELECT COUNT(*) FROM audit_events WHERE `+where), args...); err != nil {
		return 0, fmt.Errorf("audit count: %w", err)
	}
	return n, nil
}

// detailPair is a LIKE pattern matching key set to the string value in an
// event's JSON detail (written by encoding/json, so the pair appears
// exactly as marshalled).
func detailPair(key, value string) (string, error) {
	v, err := json.Marshal(value)
	if err != nil {
		return "", fmt.Errorf("audit search: %w", err)
	}
	return "%" + escapeLike(`"`+key+`":`+string(v)) + "%", nil
}

// where is the filter as a WHERE clause with its arguments.
func (f Filter) where() (string, []any, error) {
	q := `1 = 1`
	var args []any
	if f.AccountID != "" {
		q += ` AND account_id = ?`
		args = append(args, f.AccountID)
	}
	switch {
	case strings.HasSuffix(f.Type, "."):
		q += ` AND type LIKE ? ESCAPE '\'`
		args = append(args, escapeLike(f.Type)+"%")
	case f.Type != "":
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if !f.From.IsZero() {
		q += ` AND at >= ?`
		args = append(args, f.From.UTC())
	}
	if !f.To.IsZero() {
		q += ` AND at < ?`
		args = append(args, f.To.UTC())
	}
	if f.IP != "" {
		q += ` AND ip = ?`
		args = append(args, f.IP)
	}
	if f.Outcome != "" {
		q += ` AND outcome = ?`
		args = append(args, string(f.Outcome))
	}
	for _, kv := range [][2]string{{"staff", f.Staff}, {"client_id", f.ClientID}} {
		if kv[1] == "" {
			continue
		}
		p, err := detailPair(kv[0], kv[1])
		if err != nil {
			return "", nil, err
		}
		q += ` AND detail LIKE ? ESCAPE '\'`
		args = append(args, p)
	}
	return q, args, nil
}
