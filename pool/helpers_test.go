package pool

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	waitTimeout = 5 * time.Second
	waitTick    = 2 * time.Millisecond
	greeting    = "SSH-2.0-test\r\n"
)

// upstream is a test server on 127.0.0.1:0 that runs handle on each accepted
// connection and closes it when handle returns.
type upstream struct {
	t      testing.TB
	handle func(net.Conn)
	addr   string

	accepted atomic.Int64 // connections ever accepted (and seen by closeAll)
	open     atomic.Int64 // accepted and not yet closed by the server

	mu    sync.Mutex
	ln    net.Listener
	conns map[string]*serverConn // by the client's address
	wg    sync.WaitGroup
}

type serverConn struct {
	c    net.Conn
	done chan struct{} // closed once the server closed c
}

func startUpstream(t testing.TB, handle func(net.Conn)) *upstream {
	t.Helper()
	return startUpstreamAt(t, "127.0.0.1:0", handle)
}

func startUpstreamAt(t testing.TB, addr string, handle func(net.Conn)) *upstream {
	t.Helper()
	u := &upstream{t: t, handle: handle, addr: addr, conns: map[string]*serverConn{}}
	u.listen()
	t.Cleanup(u.stop)
	return u
}

// listen (re)starts the server on u.addr.
func (u *upstream) listen() {
	u.t.Helper()
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		u.t.Fatalf("listen %s: %v", u.addr, err)
	}
	u.addr = ln.Addr().String()
	u.mu.Lock()
	u.ln = ln
	u.mu.Unlock()
	u.wg.Add(1)
	go u.acceptLoop(ln)
}

func (u *upstream) acceptLoop(ln net.Listener) {
	defer u.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc := &serverConn{c: c, done: make(chan struct{})}
		u.mu.Lock()
		if u.ln != ln { // stopped meanwhile: closeAll has run
			u.mu.Unlock()
			c.Close()
			return
		}
		u.conns[c.RemoteAddr().String()] = sc
		u.accepted.Add(1) // once closeAll can see it
		u.open.Add(1)
		u.wg.Add(1)
		u.mu.Unlock()
		go func() {
			defer u.wg.Done()
			u.handle(c)
			c.Close()
			u.open.Add(-1)
			close(sc.done)
		}()
	}
}

// closeAll closes every connection the server holds.
func (u *upstream) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, sc := range u.conns {
		sc.c.Close()
	}
}

// stop closes the listener and every connection, and waits for the handlers.
func (u *upstream) stop() {
	u.mu.Lock()
	if u.ln != nil {
		u.ln.Close()
		u.ln = nil
	}
	u.mu.Unlock()
	u.closeAll()
	u.wg.Wait()
}

// serverSide returns the server's end of the client connection c.
func (u *upstream) serverSide(c net.Conn) *serverConn {
	u.t.Helper()
	var sc *serverConn
	waitFor(u.t, "upstream to accept "+c.LocalAddr().String(), func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		sc = u.conns[c.LocalAddr().String()]
		return sc != nil
	})
	return sc
}

func (u *upstream) dial(ctx context.Context) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Handlers.

func echo(c net.Conn) { io.Copy(c, c) }

func greet(c net.Conn) {
	if _, err := io.WriteString(c, greeting); err == nil {
		echo(c)
	}
}

func greetAndClose(c net.Conn) { io.WriteString(c, greeting) }

func closeAtOnce(net.Conn) {}

// closeIdle echoes, and closes the connection once it was idle for d.
func closeIdle(d time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		b := make([]byte, 512)
		for {
			c.SetReadDeadline(time.Now().Add(d))
			n, err := c.Read(b)
			if err != nil {
				return
			}
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
		}
	}
}

// Helpers.

func newPool(t *testing.T, cfg Config[*net.TCPConn]) *Pool[*net.TCPConn] {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(waitTick)
	}
}

func waitIdle(t *testing.T, p *Pool[*net.TCPConn], n int) {
	t.Helper()
	waitFor(t, "idle connections", func() bool { return p.Stats().Idle == n })
}

// waitClosed waits until the server closed its end of c.
func waitClosed(t *testing.T, u *upstream, c net.Conn) {
	t.Helper()
	select {
	case <-u.serverSide(c).done:
	case <-time.After(waitTimeout):
		t.Fatalf("upstream never saw %v closed", c.LocalAddr())
	}
}

// idleHealth probes the idle connections in place and counts how many are
// dead and how many have bytes pending. Tests use it to wait until the
// kernel has delivered what the server did, before they borrow.
func idleHealth(p *Pool[*net.TCPConn]) (dead, withBytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.idle.Keys() {
		ic, _ := p.idle.Peek(id)
		switch h, err := check(ic.c, false); {
		case err != nil:
			dead++
		case h == pending:
			withBytes++
		}
	}
	return dead, withBytes
}

func waitIdleDead(t *testing.T, p *Pool[*net.TCPConn], n int) {
	t.Helper()
	waitFor(t, "dead idle connections", func() bool { d, _ := idleHealth(p); return d == n })
}

// roundTrip writes a byte to c and reads it back from an echo server.
func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != 'x' {
		return &echoError{got: b[0]}
	}
	return nil
}

type echoError struct{ got byte }

func (e *echoError) Error() string { return "echo: got " + string(rune(e.got)) + "; want x" }

func mustRoundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	if err := roundTrip(c); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func mustGet(t *testing.T, p *Pool[*net.TCPConn], want Source) *net.TCPConn {
	t.Helper()
	c, src, _, err := p.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if src != want {
		c.Close()
		t.Fatalf("Get: source got %v; want %v", src, want)
	}
	return c
}

// dialingNow returns the background dials in flight.
func dialingNow(p *Pool[*net.TCPConn]) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialing
}

// openFDs counts this process's open file descriptors (Linux only; -1 else).
func openFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
