//go:build unix && !aix

package pool

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainLimit bounds what is read from a connection being let go: a greeting
// (an SSH banner, a MySQL handshake) is a few hundred bytes; a peer that
// streams more than this at an idle connection gets the reset it asks for.
const drainLimit = 64 << 10

// letGo ends an idle connection the pool lets go unused (expired, evicted,
// or at Close) as politely as TCP allows, so that a server never logs
// "Connection reset by peer" or counts an aborted connect for it. A socket
// closed with unread bytes queued sends a reset instead of a FIN (RFC 2525
// 2.17), and so does one closed before the server's greeting arrives: the
// greeting then lands on a closed socket (sshd under load greets tens of
// milliseconds after it accepts). So what is queued is read; if the server
// has not closed yet, our side is shut down (the server reads EOF at once)
// and the connection lingers, read every lingerTick, until the server's own
// FIN comes or lingerFor passes.
func (p *Pool[C]) letGo(c C) {
	rc, ok := rawConn(c)
	if !ok {
		c.Close()
		return
	}
	if drainRaw(rc) {
		c.Close()
		return
	}
	rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
	p.linger.add(c, rc, p.ctx.Err() != nil)
}

// rawConn is c's raw access, with any deadline cleared, if it is a socket.
func rawConn(c any) (syscall.RawConn, bool) {
	s, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	clearDeadline(c)
	rc, err := s.SyscallConn()
	return rc, err == nil
}

// drainRaw reads and discards what rc has queued, up to drainLimit, without
// blocking. It reports whether the connection is done with: the peer's FIN
// was read, the socket failed, or the peer sent more than drainLimit.
func drainRaw(rc syscall.RawConn) (done bool) {
	err := rc.Control(func(fd uintptr) {
		var buf [4096]byte
		for n := 0; ; {
			if n >= drainLimit {
				done = true
				return
			}
			r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
				unix.MSG_DONTWAIT, 0, 0)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN || e == unix.EWOULDBLOCK:
				return
			case e != 0 || r == 0: // a failure, or the peer's FIN
				done = true
				return
			}
			n += int(r)
		}
	})
	return done || err != nil
}
