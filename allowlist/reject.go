package allowlist

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// linger0 makes close(2) send a TCP reset and drop anything unread, so a
// denied client learns at once (ECONNRESET) instead of seeing a clean EOF
// it could take for a server that closed after reading its request.
var linger0 = unix.Linger{Onoff: 1, Linger: 0}

// RejectFD closes an accepted socket with a reset. It is for the forwarder's
// raw accept path: call it right after accept4, before anything is read from
// fd or any upstream is touched. On a Unix socket (no reset exists) it is a
// plain close. fd is closed whatever the result.
func RejectFD(fd int) error {
	// ENOPROTOOPT on a Unix socket, EINVAL if the peer already reset: neither
	// stops the close that matters.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &linger0)
	return unix.Close(fd)
}

// Reject closes c with a reset where c is a TCP socket, and plainly
// otherwise. c is closed whatever the result.
func Reject(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		return tc.Close()
	}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &linger0)
			})
		}
	}
	return c.Close()
}
