package pool_test

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// sockState is what the kernel holds for one of our TCP sockets, read
// without touching its queue: an oracle apart from the pool's own probe.
type sockState struct {
	dead   bool // no longer ESTABLISHED: the peer's FIN or reset came, or we shut down writing
	queued int  // bytes waiting to be read (SIOCINQ)
}

// kernelState reads c's state; open is false once c was closed on our side.
func kernelState(t *testing.T, c *net.TCPConn) (s sockState, open bool) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	err = rc.Control(func(fd uintptr) {
		if info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); ierr == nil {
			s.queued, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}
	})
	switch {
	case errors.Is(err, net.ErrClosed):
		return s, false
	case err != nil:
		t.Fatal(err)
	case ierr != nil:
		t.Fatalf("TCP_INFO or SIOCINQ: %v", ierr)
	}
	s.dead = info.State != unix.BPF_TCP_ESTABLISHED
	return s, true
}
