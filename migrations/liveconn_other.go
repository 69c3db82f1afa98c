//go:build !unix

package migrations

import "net"

// closedByPeer cannot peek at sockets here: database/sql's own retry on
// driver.ErrBadConn is all there is.
func closedByPeer(net.Conn, bool) bool { return false }
