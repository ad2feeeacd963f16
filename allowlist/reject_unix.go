//go:build unix

package allowlist

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// RejectFD closes an accepted socket with a reset (SO_LINGER 0), for the
// forwarder's raw accept path: call it right after accept4, before anything
// is read from fd or any upstream is touched. On a Unix socket (no reset
// exists) it is a plain close. fd is closed whatever the result.
func RejectFD(fd int) error {
	// ENOPROTOOPT on a Unix socket, EINVAL if the peer already reset: neither
	// stops the close that matters.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return unix.Close(fd)
}

// Admit is AdmitConn for the forwarder's raw accept path: client is what
// accept4 returned for fd. Denied, fd is closed.
func (l *List) Admit(fd int, client netip.AddrPort, r *Reporter) bool {
	if l == nil || l.Allows(client.Addr()) {
		return true
	}
	if r != nil {
		r.Denied(client)
	}
	RejectFD(fd)
	return false
}
