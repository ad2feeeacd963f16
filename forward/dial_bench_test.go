//go:build linux

package forward

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/forward/internal/rawsock"
	"github.com/warmport/warmport/pool"
)

// The cost of a cold dial on loopback, the two ways the event loop could get
// its upstream fd: the forwarder's own connect (BenchmarkDialOwn), or
// net.Dialer's connection with its fd taken out of Go's netpoller
// (BenchmarkDialAdopt: dup, then close Go's copy). Each closes what it got.

func BenchmarkDialOwn(b *testing.B) {
	up := startUpstream(b, func(*net.TCPConn) {})
	f, _ := startForwarder(b, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := f.dialUpstream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func BenchmarkDialAdopt(b *testing.B) {
	up := startUpstream(b, func(*net.TCPConn) {})
	d := net.Dialer{KeepAlive: -1} // as the own dialer on loopback
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := adopt(d.DialContext(ctx, "tcp", up.addr()))
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// adopt takes c's fd out of Go's netpoller as a sock.
func adopt(c net.Conn, err error) (*sock, error) {
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return rawsock.New(fd, c.RemoteAddr().(*net.TCPAddr).AddrPort(), ""), nil
}
