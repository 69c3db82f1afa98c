package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Span is when events of one kind first and last happened.
type Span struct{ First, Last time.Time }

// Zero reports whether there were no events.
func (s Span) Zero() bool { return s.First.IsZero() }

// SpanOf returns when an account's events of type typ whose detail has
// key set to the string value first and last happened (a zero Span when
// there were none): the services page uses it for "first used" and "last
// used", from the authorization codes issued to each client.
func (l *Log) SpanOf(ctx context.Context, accountID, typ, key, value string) (Span, error) {
	k, err := json.Marshal(key)
	if err != nil {
		return Span{}, fmt.Errorf("audit span: %w", err)
	}
	v, err := json.Marshal(value)
	if err != nil {
		return Span{}, fmt.Errorf("audit span: %w", err)
	}
	// Details are JSON objects written by encoding/json: the pair appears
	// exactly as marshalled. LIKE's wildcards are escaped.
	pattern := "%" + escapeLike(string(k)+":"+string(v)) + "%"
	// Two ordered reads rather than MIN/MAX: SQLite loses the column's
	// type in aggregates, and the times would not scan.
	q := `SELECT at FROM audit_events WHERE account_id = ? AND type = ? AND detail LIKE ? ESCAPE '\' ORDER BY at `
	var first, last []time.Time
	if err := l.db.SelectContext(ctx, &first, l.db.Rebind(q+`ASC LIMIT 1`), accountID, typ, pattern); err != nil {
		return Span{}, fmt.Errorf("audit span: %w", err)
	}
	if len(first) == 0 {
		return Span{}, nil
	}
	if err := l.db.SelectContext(ctx, &last, l.db.Rebind(q+`DESC LIMIT 1`), accountID, typ, pattern); err != nil {
		return Span{}, fmt.Errorf("audit span: %w", err)
	}
	if len(last) == 0 {
		return Span{}, nil
	}
	return Span{First: first[0], Last: last[0]}, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Redact keeps the minimum record of a deleted account's events: what
// happened, how it ended and when, under the account's (random) id. The
// IP address, browser and details are cleared. It returns how many events
// it changed.
func (l *Log) Redact(ctx context.Context, accountID string) (int64, error) {
	res, err := l.db.ExecContext(ctx, l.db.Rebind(`UPDATE audit_events SET ip = '', user_agent = '', detail = '' WHERE account_id = ?`), accountID)
	if err != nil {
		return 0, fmt.Errorf("redact audit events: %w", err)
	}
	return res.RowsAffected()
}
