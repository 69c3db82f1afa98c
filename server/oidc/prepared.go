package oidc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmtCache prepares the statements of the token endpoint's hot path once
// instead of on every request (SQLite compiles every unprepared statement
// anew). database/sql keeps each statement prepared per connection, and a
// transaction reuses the one of its connection. It is safe for concurrent
// use.
//
// Preparing through the pool needs a free connection, so it must never
// happen while the caller holds a transaction (with every connection held
// by transactions waiting to prepare, nothing would move): code inside a
// transaction uses inTx, which prepares on the transaction's own
// connection when the statement has not been warmed beforehand.
type stmtCache struct {
	db *sqlx.DB
	mu sync.Mutex
	m  map[string]*sqlx.Stmt
}

func (c *stmtCache) lookup(query string) *sqlx.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[query]
}

// get returns query (written with '?') prepared, preparing it on first
// use. Call it only when holding no transaction.
func (c *stmtCache) get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st := c.lookup(query); st != nil {
		return st, nil
	}
	// Prepare without the lock: another goroutine may do the same, and
	// the loser closes its copy.
	st, err := c.db.PreparexContext(ctx, c.db.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	c.mu.Lock()
	if prev := c.m[query]; prev != nil {
		c.mu.Unlock()
		// Close outside the lock: closing takes the lock of every
		// connection the statement was prepared on, and such a connection
		// may be waiting (BEGIN IMMEDIATE) for a transaction whose goroutine
		// wants this cache's lock: a cycle that only SQLite's busy timeout
		// would break, with an error.
		_ = st.Close()
		return prev, nil
	}
	if c.m == nil {
		c.m = map[string]*sqlx.Stmt{}
	}
	c.m[query] = st
	c.mu.Unlock()
	return st, nil
}

// warm prepares queries that a transaction is about to use. Call it before
// beginning the transaction.
func (c *stmtCache) warm(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		if _, err := c.get(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// inTx returns query prepared and bound to tx: the cached statement when
// warmed, or else one prepared on the transaction's connection and closed
// with it.
func (c *stmtCache) inTx(ctx context.Context, tx *sqlx.Tx, query string) (*sqlx.Stmt, error) {
	if st := c.lookup(query); st != nil {
		return tx.StmtxContext(ctx, st), nil
	}
	st, err := tx.PreparexContext(ctx, tx.Rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	return st, nil
}

// close releases every prepared statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}
