package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/upstream/tlsup"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// The kernel reports a reset once, to whichever call on the socket comes
// first. A TLS server that resets right after the handshake, with the
// copier's write of the client's first bytes taking the reset and its read
// finding EOF before that write's failure is handled (the order a loaded
// machine picks now and then): the client still gets a reset, never a
// clean EOF, and the record says error.
func TestCopierResetTakenByWrite(t *testing.T) {
	t.Run("the client's bytes", func(t *testing.T) { testResetTakenByWrite(t, 0, false) })
	// The client's EOF: crypto/tls writes close_notify before the FIN, and
	// that write takes the reset, so no FIN of ours went out and the EOF
	// the read finds is still the reset's.
	t.Run("close_notify", func(t *testing.T) { testResetTakenByWrite(t, 1, true) })
}

// testResetTakenByWrite: the upstream's write number skip+1 after the
// handshake takes the reset; halfClose: the client half-closes after its
// bytes, so that write is crypto/tls's close_notify.
func testResetTakenByWrite(t *testing.T, skip int32, halfClose bool) {
	ca := tlstest.NewCA(t, "test CA")
	resetNow := make(chan struct{})
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: func(tc *tls.Conn) {
		select {
		case <-resetNow:
		case <-time.After(testTimeout):
		}
		tlstest.Reset(tc)
	}})
	cfg, err := tlsup.Options{CAFile: ca.File}.Config("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var raws atomic.Pointer[writeFirstConn]
	dialStream := func(ctx context.Context, addr string) (Stream, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		raw := &writeFirstConn{TCPConn: c.(*net.TCPConn), resetNow: resetNow, wrote: make(chan struct{}), read: make(chan struct{})}
		s, err := tlsup.Dial(ctx, raw, cfg)
		if err != nil {
			return nil, err
		}
		raw.skip.Store(skip)
		raw.armed.Store(true) // the relay's calls from here on
		raws.Store(raw)
		return s, nil
	}
	f, addr := startForwarder(t, Config{Remote: srv.Addr, DialStream: dialStream, Pool: pool.Options{Warm: 0}})
	c := dial(t, addr)
	c.Write([]byte("hello"))
	if halfClose {
		c.CloseWrite()
	}
	got, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read: got %q, %v; want a reset (the server's abort is no clean EOF)", got, err)
	}
	raw := raws.Load()
	if raw == nil {
		t.Fatal("no upstream was dialed")
	}
	for _, done := range []chan struct{}{raw.wrote, raw.read} {
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatal("the relay never wrote and read the upstream")
		}
	}
	if !errors.Is(raw.writeErr, syscall.ECONNRESET) || raw.readErr != io.EOF {
		t.Fatalf("the relay's write got %v, its read %v; want the reset, then EOF: the order under test", raw.writeErr, raw.readErr)
	}
	sum := shutdown(t, f, time.Second)
	if r := sum.Connections; len(r) != 1 || r[0].ClosedBy != "error" {
		t.Errorf("records %+v; want one closed by error", r)
	}
}

// writeFirstConn is the TLS upstream's socket, making the order under test
// certain once armed: its first Write waits for the server's reset to have
// arrived, takes it, and returns only after its first Read (held until that
// write's syscall is done) has found the EOF that follows.
type writeFirstConn struct {
	*net.TCPConn
	armed               atomic.Bool
	skip                atomic.Int32  // armed writes that pass before the one under test
	resetNow            chan struct{} // tells the server to reset
	wrote, read         chan struct{} // the first write's and read's syscalls are done
	writeOnce, readOnce sync.Once
	writeErr            error // what the first write's syscall returned; set before wrote closes
	readErr             error // what the first read's syscall returned; set before read closes
}

func (c *writeFirstConn) Write(b []byte) (n int, err error) {
	if !c.armed.Load() || c.skip.Add(-1) >= 0 {
		return c.TCPConn.Write(b)
	}
	first := false
	c.writeOnce.Do(func() {
		first = true
		close(c.resetNow)
		pollHup(c.TCPConn) // if it never comes, the test's check of writeErr says so
		n, err = c.TCPConn.Write(b)
		c.writeErr = err
		close(c.wrote)
	})
	if !first {
		return c.TCPConn.Write(b)
	}
	select {
	case <-c.read:
	case <-time.After(testTimeout):
	}
	return n, err
}

func (c *writeFirstConn) Read(b []byte) (n int, err error) {
	if !c.armed.Load() {
		return c.TCPConn.Read(b)
	}
	first := false
	c.readOnce.Do(func() {
		first = true
		select {
		case <-c.wrote:
		case <-time.After(testTimeout):
		}
		n, err = c.TCPConn.Read(b)
		c.readErr = err
		close(c.read)
	})
	if !first {
		return c.TCPConn.Read(b)
	}
	return n, err
}

// resetUnderEOF tells a reset another call took from a FIN: a peer's FIN
// leaves the connection open on our side; our own FIN, answered, closes it
// as a reset does, and finSent keeps that from being taken for one.
func TestResetUnderEOF(t *testing.T) {
	for _, tc := range []struct {
		name    string
		end     func(t *testing.T, ours, peer *net.TCPConn)
		finSent bool
		want    bool
	}{
		{"a write took the peer's reset", func(t *testing.T, ours, peer *net.TCPConn) {
			peer.SetLinger(0)
			peer.Close()
			if !pollHup(ours) {
				t.Fatal("the peer's reset never came")
			}
			if _, err := ours.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("write: got %v; want the reset", err)
			}
		}, false, true},
		{"the peer's FIN", func(t *testing.T, ours, peer *net.TCPConn) { peer.Close() }, false, false},
		{"our FIN answered", func(t *testing.T, ours, peer *net.TCPConn) {
			peer.CloseWrite()
			if _, err := ours.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read: got %v; want EOF", err)
			}
			ours.CloseWrite()
			eventually(t, "the peer's ACK of our FIN", func() bool {
				closed := false
				onFDOf(ours)(func(fd int) { closed = closedByKernel(fd) })
				return closed
			})
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, peer := tcpPair(t)
			tc.end(t, ours, peer)
			if _, err := ours.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("read: got %v; want EOF", err)
			}
			if got := resetUnderEOF(onFDOf(ours), func() bool { return tc.finSent }); got != tc.want {
				t.Errorf("resetUnderEOF: got %v; want %v", got, tc.want)
			}
		})
	}
}

// tcpPair returns both ends of a TCP connection on 127.0.0.1, closed at the
// test's end.
func tcpPair(t *testing.T) (ours, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func onFDOf(c *net.TCPConn) func(func(fd int)) {
	return func(fn func(fd int)) {
		if rc, err := c.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { fn(int(fd)) })
		}
	}
}

// pollHup waits, bounded, for c's peer's reset to reach c (poll's POLLHUP
// or POLLERR, which leave the reset for the next call), and says whether it
// came.
func pollHup(c *net.TCPConn) bool {
	n := 0
	onFDOf(c)(func(fd int) {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		n, _ = unix.Poll(pfd, int(testTimeout/time.Millisecond))
	})
	return n == 1
}
