package forward

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blackhole makes ln drop new SYNs: its accept queue (of one) is filled, so
// a dial to it stays in SYN_SENT.
func blackhole(t *testing.T, ln net.Listener) {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.Listen(int(fd), 0) }) // queue one, drop SYNs after
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		if i == 8 {
			t.Fatal("the listener never stopped answering SYNs: no blackhole to test with")
		}
	}
}

// blackholed listens on 127.0.0.1 and drops every SYN (see blackhole).
func blackholed(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	blackhole(t, ln)
	return ln
}
