//go:build linux && !wpgoroutines

package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
)

// engineTestSetup: the event loop has no test knobs, and reads the replay
// window into a buffer of its own, so bufsHeld stays 0.
func engineTestSetup() {}

// Idle pairs cost the loop no goroutine at all, and come back to life in
// either direction, for half-close, and for abort.
func TestLoopIdlePairsHoldNoGoroutines(t *testing.T) {
	up := startUpstream(t, echo)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	const pairs = 100
	runtime.GC()
	base := runtime.NumGoroutine()
	conns := make([]*net.TCPConn, pairs)
	for i := range conns {
		conns[i] = dial(t, addr)
		if _, err := conns[i].Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conns[i], make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all pairs active", func() bool { return f.Active() == pairs })
	// The upstream's echo holds a goroutine per connection: pairs of them.
	if n := runtime.NumGoroutine() - base; n > pairs+16 {
		t.Errorf("%d more goroutines with %d idle pairs; want at most %d (the upstream's own)", n, pairs, pairs+16)
	}
	msg := bytes.Repeat([]byte("y"), 100<<10)
	for i, c := range conns {
		switch i % 3 {
		case 0: // a round trip, then a half-close: the rest of the reply still comes
			go c.Write(msg)
			if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
				t.Fatalf("pair %d: %v", i, err)
			}
			c.CloseWrite()
			if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
				t.Fatalf("pair %d after EOF: %d bytes, %v", i, len(b), err)
			}
		case 1: // the client just goes
			c.Close()
		}
	}
	sum := shutdown(t, f, 100*time.Millisecond) // the rest are aborted by the drain's end
	if len(sum.Connections) != pairs {
		t.Fatalf("%d records; want %d", len(sum.Connections), pairs)
	}
	var aborted int
	for _, r := range sum.Connections {
		if r.ClosedBy == ClosedByShutdown {
			aborted++
		}
	}
	if want := pairs / 3; aborted < want-1 || aborted > want+1 {
		t.Errorf("%d pairs aborted by the shutdown; want about %d (those still open)", aborted, want)
	}
}

// The loop's own dialer speaks like Go's: names resolve, IPv6 works, and a
// refused connection reads as Go's dialer would put it.
func TestLoopDial(t *testing.T) {
	up := startUpstream(t, echo)
	_, port, _ := net.SplitHostPort(up.addr())
	for _, remote := range []string{"localhost:" + port, up.addr()} {
		_, addr := startForwarder(t, Config{Remote: remote, Pool: pool.Options{Warm: 0}})
		if got, err := echoOnce(addr, "hi"); err != nil || got != "hi" {
			t.Fatalf("through %s: %q, %v", remote, got, err)
		}
	}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); echo(c.(*net.TCPConn)) }()
			}
		}()
		_, addr := startForwarder(t, Config{Remote: ln.Addr().String(), Pool: pool.Options{Warm: 0}})
		if got, err := echoOnce(addr, "v6"); err != nil || got != "v6" {
			t.Fatalf("through %s: %q, %v", ln.Addr(), got, err)
		}
	} else {
		t.Logf("no IPv6 loopback here (%v): IPv6 dial not tried", err)
	}

	// A client on IPv6 loopback: the record says where it came from.
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		f, err := New(Config{Local: "[::1]:0", Remote: up.addr(), Pool: pool.Options{Warm: 0}})
		if err != nil {
			t.Fatal(err)
		}
		go f.Serve(context.Background())
		if got, err := echoOnce(f.Addr().String(), "c6"); err != nil || got != "c6" {
			t.Fatalf("client on [::1]: %q, %v", got, err)
		}
		sum := f.Shutdown(context.Background())
		if r := sum.Connections; len(r) != 1 || !strings.HasPrefix(r[0].Client, "[::1]:") {
			t.Fatalf("records %+v; want one from [::1]", r)
		}
	}

	dead := net.JoinHostPort("127.0.0.1", freePort(t))
	f, err := New(Config{Local: "127.0.0.1:0", Remote: dead, Pool: pool.Options{Warm: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Shutdown(context.Background())
	_, err = f.dialUpstream(context.Background())
	want := "dial tcp " + dead + ": connect: connection refused"
	if err == nil || err.Error() != want {
		t.Fatalf("dial a closed port: %v; want %q", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.dialUpstream(ctx); err == nil || !strings.Contains(err.Error(), "dial tcp") {
		t.Fatalf("dial with a canceled context: %v; want a dial error", err)
	}
}

// freePort returns a port nothing listens on (just now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
