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
	q := `SELECT id, at, type, outcome, account_id, ip, user_agent, request_id, detail FROM audit_events WHERE 1 = 1`
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
	if f.Staff != "" {
		v, err := json.Marshal(f.Staff)
		if err != nil {
			return nil, fmt.Errorf("audit search: %w", err)
		}
		q += ` AND detail LIKE ? ESCAPE '\'`
		args = append(args, "%"+escapeLike(`"staff":`+string(v))+"%")
	}
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
