//go:build unix

package migrations

import (
	"errors"
	"net"
	"syscall"
)

// closedByPeer peeks at c's socket without blocking or consuming: a
// connection at end of file or reset has been closed by the server, and so
// has a plaintext one (!encrypted) with an ErrorResponse waiting.
func closedByPeer(c net.Conn, encrypted bool) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
			// nothing waiting: alive
		case err != nil, n == 0: // reset, end of file
			closed = true
		default: // bytes waiting: an ErrorResponse is the server's goodbye
			closed = !encrypted && buf[0] == 'E'
		}
		return true // never wait for readability
	})
	return closed
}
