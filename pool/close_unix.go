//go:build unix && !aix

package pool

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainLimit bounds what closeUnused reads before closing: a greeting (an SSH
// banner, a MySQL handshake) is a few hundred bytes; a peer that streams more
// than this at an idle connection gets the reset it asks for.
const drainLimit = 64 << 10

// closeUnused closes an idle connection the pool lets go unused (expired,
// evicted, or at Close) as politely as TCP allows. A socket closed with
// unread bytes in its receive queue sends a RST instead of a FIN (RFC 2525
// 2.17), so a server that greeted a pre-dialed connection (sshd's banner,
// MySQL's handshake) would log "Connection reset by peer" or count an
// aborted connect for each. Reading what is queued, without waiting, first
// makes the close a FIN.
func closeUnused(c interface{ Close() error }) {
	if s, ok := c.(syscall.Conn); ok {
		clearDeadline(c) // a past deadline keeps RawConn.Read from calling drain
		if rc, err := s.SyscallConn(); err == nil {
			rc.Read(drain)
		}
	}
	c.Close()
}

// drain reads and discards what fd has queued, up to drainLimit, without
// blocking. It always returns true: RawConn.Read must never wait.
func drain(fd uintptr) bool {
	var buf [4096]byte
	for n := 0; n < drainLimit; {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0 || r == 0: // EAGAIN: nothing more queued; 0: the peer's FIN
			return true
		}
		n += int(r)
	}
	return true
}
