package migrations

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/lib/pq"
)

// errPeerClosed is returned by a write on a pooled PostgreSQL connection
// the server has already closed (a restart, pg_terminate_backend, a proxy
// dropping it): nothing was written, so lib/pq reports driver.ErrBadConn
// and database/sql retries on another connection instead of failing the
// request with "connection reset by peer".
var errPeerClosed = errors.New("postgres connection closed by the server")

// liveDialer dials PostgreSQL connections that check, before each write,
// that the server has not closed them while they sat idle in the pool.
type liveDialer struct{ d net.Dialer }

func (l liveDialer) Dial(network, address string) (net.Conn, error) {
	return l.DialContext(context.Background(), network, address)
}

func (l liveDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.DialContext(ctx, network, address)
}

func (l liveDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := l.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
	}
	return &liveConn{Conn: c}, nil
}

// liveConn is a connection whose writes first peek at the socket without
// blocking or consuming. On an idle plaintext PostgreSQL connection the only
// bytes that can be waiting are asynchronous messages; end of file, a reset,
// or an ErrorResponse (the FATAL of a terminated backend) mean the server
// has gone. Under TLS the waiting bytes cannot be read (a session ticket
// looks like an error), so only end of file and a reset count.
type liveConn struct {
	net.Conn
	started bool // the startup (or SSL request) packet has gone
	tls     bool // the connection asked for TLS (or GSS encryption)
}

func (c *liveConn) Write(b []byte) (int, error) {
	if !c.started {
		c.started = true
		// SSLRequest and GSSENCRequest: length 8, then 1234 in the high half
		// of the code.
		c.tls = len(b) == 8 && b[3] == 8 && b[4] == 0x04 && b[5] == 0xd2
		return c.Conn.Write(b)
	}
	if closedByPeer(c.Conn, c.tls) {
		return 0, errPeerClosed
	}
	return c.Conn.Write(b)
}

var _ pq.DialerContext = liveDialer{}

// openPostgres returns a connector whose connections come from liveDialer.
func openPostgres(dsn string) (*pq.Connector, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(liveDialer{})
	return c, nil
}
