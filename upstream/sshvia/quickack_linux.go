package sshvia

import (
	"net"

	"golang.org/x/sys/unix"
)

// quickAck makes the kernel acknowledge what it just received at once
// instead of after the delayed-ACK timer (up to 40 ms on Linux). sshd sets
// TCP_NODELAY only for interactive sessions, so on a forwarding-only
// connection Nagle holds its next small packet (a target's short reply)
// until its last one is acknowledged: a channel close or open confirmation
// still unacknowledged when the next request comes costs that request up to
// the delayed-ACK timer. Linux clears the flag as it goes, so it is set
// again after every read.
func quickAck(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
		})
	}
}
