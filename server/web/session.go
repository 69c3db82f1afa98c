package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/jmoiron/sqlx"

	"github.com/idlink/idlink/migrations"
	"github.com/idlink/idlink/server/secrets"
)

// SessionCookie is the name of the cookie that carries the session id
// over http (development); under https it is SecureSessionCookie.
const SessionCookie = "idlink_session"

// SecureSessionCookie is the session cookie's name under https: the
// __Host- prefix makes browsers refuse it unless it is Secure, has Path=/
// and no Domain, so neither a subdomain nor a plain-http page can set or
// overwrite it.
const SecureSessionCookie = "__Host-" + SessionCookie

const localsSession = "idlink.session"

// lastSeenGranularity bounds how often an unchanged session is written back
// just to move its idle deadline.
const lastSeenGranularity = time.Minute

// Session is the server-side state of one browser. Capabilities keep their
// journey state under keys of their own (Get/Put); the account id is a
// column too, so that every session of an account can be ended at once.
type Session struct {
	id        string // raw id, only ever in the cookie
	accountID string
	values    map[string]json.RawMessage
	createdAt time.Time
	lastSeen  time.Time
	expiresAt time.Time
	stored    bool // a row exists for id
	dirty     bool
	destroyed bool
	oldIDs    []string // ids replaced by Renew, deleted on save
	inSave    []func(ctx context.Context, tx sqlx.ExtContext) error
	afterSave []func()
}

// InSave runs fn inside the transaction that saves the session at the end
// of the request, so what fn writes (a code marked used, an audit event
// saying the login completed) is committed with the session or not at all.
// When the handler fails, neither the session's changes nor fn are saved.
func (s *Session) InSave(fn func(ctx context.Context, tx sqlx.ExtContext) error) {
	s.inSave = append(s.inSave, fn)
}

// AfterSave runs fn once the session has been saved after a handler that
// succeeded (a metric that must count only what was kept).
func (s *Session) AfterSave(fn func()) { s.afterSave = append(s.afterSave, fn) }

// AccountID returns the signed-in account, or "" when nobody is signed in.
func (s *Session) AccountID() string { return s.accountID }

// SetAccount binds the session to an account (or "" to unbind). Call Renew
// first when the person has just signed in, so the id changes.
func (s *Session) SetAccount(id string) {
	s.accountID = id
	s.dirty = true
}

// Get decodes the value stored under key into v and reports whether it was there.
func (s *Session) Get(key string, v any) bool {
	raw, ok := s.values[key]
	if !ok {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

// Put stores v under key.
func (s *Session) Put(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("session value %s is not JSON-encodable: %v", key, err))
	}
	if s.values == nil {
		s.values = map[string]json.RawMessage{}
	}
	s.values[key] = b
	s.dirty = true
}

// Delete removes the value under key.
func (s *Session) Delete(key string) {
	if _, ok := s.values[key]; ok {
		delete(s.values, key)
		s.dirty = true
	}
}

// Renew gives the session a new id, keeping its contents: done on every
// sign-in so that an id planted before sign-in is worthless after it.
func (s *Session) Renew() {
	if s.stored {
		s.oldIDs = append(s.oldIDs, s.id)
	}
	s.id = secrets.NewToken()
	s.stored = false
	s.dirty = true
}

// Destroy ends the session: its row is deleted and the cookie cleared.
func (s *Session) Destroy() { s.destroyed = true }

// CSRFToken returns the session's anti-forgery token, creating it (and so
// the session) on first use.
func (s *Session) CSRFToken() string {
	var tok string
	if s.Get("csrf", &tok) && tok != "" {
		return tok
	}
	tok = secrets.NewToken()
	s.Put("csrf", tok)
	return tok
}

// Sessions loads and saves sessions in the database.
type Sessions struct {
	db       *sqlx.DB
	keys     *secrets.Keyring
	idle     time.Duration
	absolute time.Duration
	secure   bool
	now      func() time.Time
}

// NewSessions returns a session store. Sessions end after idle without a
// request, and at the latest absolute after they began; secure marks the
// cookie Secure (the issuer is https).
func NewSessions(db *sqlx.DB, keys *secrets.Keyring, idle, absolute time.Duration, secure bool, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{db: db, keys: keys, idle: idle, absolute: absolute, secure: secure, now: now}
}

type sessionRow struct {
	AccountID  *string   `db:"account_id"`
	Data       string    `db:"data"`
	CreatedAt  time.Time `db:"created_at"`
	LastSeenAt time.Time `db:"last_seen_at"`
	ExpiresAt  time.Time `db:"expires_at"`
}

func (st *Sessions) hash(id string) string { return st.keys.MAC("session", id) }

// CookieName is the session cookie's name: SecureSessionCookie under
// https, SessionCookie otherwise.
func (st *Sessions) CookieName() string {
	if st.secure {
		return SecureSessionCookie
	}
	return SessionCookie
}

// Middleware loads the browser's session before the handler and saves it
// after; handlers reach it with Sess(c).
func (st *Sessions) Middleware() fiber.Handler {
	return func(c fiber.Ctx) error {
		s, err := st.load(c.Context(), c.Cookies(st.CookieName()))
		if err != nil {
			return err
		}
		c.Locals(localsSession, s)
		herr := c.Next()
		if herr != nil && len(s.inSave) > 0 {
			// The step failed after asking for writes with the session:
			// keep none of it, so no half-done step is left behind.
			return herr
		}
		if err := st.save(c, s); err != nil {
			return err
		}
		if herr == nil {
			for _, fn := range s.afterSave {
				fn()
			}
		}
		return herr
	}
}

func (st *Sessions) load(ctx context.Context, id string) (*Session, error) {
	now := st.now().UTC()
	fresh := func() *Session {
		return &Session{id: secrets.NewToken(), createdAt: now, lastSeen: now, expiresAt: now.Add(st.absolute)}
	}
	if len(id) != 43 { // secrets.NewToken length; anything else is not ours
		return fresh(), nil
	}
	var row sessionRow
	err := migrations.RetryRead(ctx, func(ctx context.Context) error {
		return st.db.GetContext(ctx, &row, st.db.Rebind(`SELECT account_id, data, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = ?`), st.hash(id))
	})
	if migrations.IsNoRows(err) {
		return fresh(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !now.Before(row.ExpiresAt) || !now.Before(row.LastSeenAt.Add(st.idle)) {
		if _, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM sessions WHERE id_hash = ?`), st.hash(id)); err != nil {
			return nil, fmt.Errorf("delete expired session: %w", err)
		}
		return fresh(), nil
	}
	s := &Session{id: id, createdAt: row.CreatedAt, lastSeen: row.LastSeenAt, expiresAt: row.ExpiresAt, stored: true}
	if row.AccountID != nil {
		s.accountID = *row.AccountID
	}
	if err := json.Unmarshal([]byte(row.Data), &s.values); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	if now.Sub(s.lastSeen) > lastSeenGranularity {
		s.lastSeen = now
		s.dirty = true
	}
	return s, nil
}

// save writes the session back in one transaction: the rows of renewed
// ids are deleted, the session inserted or updated, and the InSave
// functions run, so a failure part way leaves the old session as it was
// (never a signed-in session without its audit event, nor an old id
// deleted without the new one stored).
func (st *Sessions) save(c fiber.Ctx, s *Session) error {
	if !s.dirty && !s.destroyed && len(s.oldIDs) == 0 && len(s.inSave) == 0 {
		return nil
	}
	ctx := c.Context()
	tx, err := st.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save session: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, old := range s.oldIDs {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM sessions WHERE id_hash = ?`), st.hash(old)); err != nil {
			return fmt.Errorf("delete renewed session: %w", err)
		}
	}
	cookie := func() {} // set once the transaction has committed
	switch {
	case s.destroyed:
		if s.stored {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM sessions WHERE id_hash = ?`), st.hash(s.id)); err != nil {
				return fmt.Errorf("delete session: %w", err)
			}
		}
		cookie = func() { st.clearCookie(c) }
	case !s.dirty:
	default:
		data, err := json.Marshal(s.values)
		if err != nil {
			return fmt.Errorf("encode session: %w", err)
		}
		var acct *string
		if s.accountID != "" {
			acct = &s.accountID
		}
		now := st.now().UTC()
		if s.stored {
			res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE sessions SET account_id = ?, data = ?, last_seen_at = ? WHERE id_hash = ?`),
				acct, string(data), now, st.hash(s.id))
			if err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				// The row is gone: the person signed out elsewhere, or every
				// session of the account was ended. Do not resurrect it, and
				// keep nothing that came with it.
				st.clearCookie(c)
				return nil
			}
		} else {
			_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sessions (id_hash, account_id, data, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
				st.hash(s.id), acct, string(data), s.createdAt, now, s.expiresAt)
			if err != nil {
				return fmt.Errorf("create session: %w", err)
			}
			cookie = func() { st.setCookie(c, s) }
		}
	}
	for _, fn := range s.inSave {
		if err := fn(ctx, tx); err != nil {
			return fmt.Errorf("save session: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save session: commit: %w", err)
	}
	s.oldIDs, s.inSave = nil, nil
	cookie()
	return nil
}

// setCookie gives the browser the id of a session just stored.
func (st *Sessions) setCookie(c fiber.Ctx, s *Session) {
	s.stored = true
	c.Cookie(&fiber.Cookie{
		Name:     st.CookieName(),
		Value:    s.id,
		Path:     "/",
		HTTPOnly: true,
		Secure:   st.secure,
		SameSite: fiber.CookieSameSiteLaxMode,
		// A session cookie (no Expires): closing the browser ends it; the
		// server enforces the idle and absolute limits.
	})
}

func (st *Sessions) clearCookie(c fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: st.CookieName(), Value: "", Path: "/", HTTPOnly: true, Secure: st.secure,
		SameSite: fiber.CookieSameSiteLaxMode, Expires: time.Unix(0, 0), MaxAge: -1})
}

// EndAccountSessions deletes every session of an account except the one
// whose raw id is keep (which may be ""), and returns how many ended.
func (st *Sessions) EndAccountSessions(ctx context.Context, accountID, keepHash string) (int64, error) {
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM sessions WHERE account_id = ? AND id_hash <> ?`), accountID, keepHash)
	if err != nil {
		return 0, fmt.Errorf("end sessions of account: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// HashOf returns the stored form of the session's id, to pass as keepHash.
func (st *Sessions) HashOf(s *Session) string { return st.hash(s.id) }

// PurgeExpired deletes sessions past their absolute or idle limit.
func (st *Sessions) PurgeExpired(ctx context.Context) (int64, error) {
	now := st.now().UTC()
	res, err := st.db.ExecContext(ctx, st.db.Rebind(`DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?`), now, now.Add(-st.idle))
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Probe checks that sessions can be written now, for the readiness probe:
// a write that matches no row still needs the table's write lock, so a
// table locked by someone else, or a pool whose every connection is stuck,
// makes it wait until ctx ends, when a plain "SELECT 1" would succeed.
func (st *Sessions) Probe(ctx context.Context) error {
	if _, err := st.db.ExecContext(ctx, st.db.Rebind(`UPDATE sessions SET last_seen_at = last_seen_at WHERE id_hash = ?`), "-"); err != nil {
		return fmt.Errorf("sessions probe: %w", err)
	}
	return nil
}

// ErrNoSession is returned by Sess when the middleware did not run.
var ErrNoSession = errors.New("no session middleware on this route")

// Sess returns the request's session. It panics when the session middleware
// is not installed, which is a wiring mistake.
func Sess(c fiber.Ctx) *Session {
	s, ok := c.Locals(localsSession).(*Session)
	if !ok {
		panic(ErrNoSession)
	}
	return s
}
