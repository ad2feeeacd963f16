package pool_test

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
	. "github.com/warmport/warmport/pool"
)

const (
	waitTimeout = 5 * time.Second
	waitTick    = 2 * time.Millisecond
	greeting    = "SSH-2.0-test\r\n"
)

// upstream is a testsrv.Server on 127.0.0.1 (the tests' one
// tracked-connection server) that the pool dials. It keeps the connections
// its dial made, as any caller of a pool may: what the kernel holds for the
// idle ones is how a test waits for a server's act to reach them (health).
type upstream struct {
	*testsrv.Server

	mu     sync.Mutex
	dialed []*net.TCPConn
}

func startUpstream(t testing.TB, handle func(net.Conn)) *upstream {
	t.Helper()
	return startUpstreamAt(t, "127.0.0.1:0", handle)
}

func startUpstreamAt(t testing.TB, addr string, handle func(net.Conn)) *upstream {
	t.Helper()
	return &upstream{Server: testsrv.Serve(t, "tcp", addr, func(c net.Conn, _ func()) { handle(c) })}
}

func (u *upstream) dial(ctx context.Context) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Addr())
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.dialed = append(u.dialed, c.(*net.TCPConn))
	u.mu.Unlock()
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
	case <-u.Ended(t, c):
	case <-time.After(waitTimeout):
		t.Fatalf("upstream never saw %v closed", c.LocalAddr())
	}
}

// health counts, among the connections u dialed that are still open on our
// side (in these tests: those the pool holds idle, since every borrowed one
// is closed before), how many the kernel shows dead (the server's FIN or
// reset arrived) and how many have bytes waiting. Tests wait on it until what
// the server did has reached the pool's sockets, before they borrow.
func (u *upstream) health(t *testing.T) (dead, withBytes int) {
	t.Helper()
	for _, c := range u.conns() {
		s, open := kernelState(t, c)
		switch {
		case !open:
		case s.dead:
			dead++
		case s.queued > 0:
			withBytes++
		}
	}
	return dead, withBytes
}

// conns are the connections u's dial made, in the order it made them.
func (u *upstream) conns() []*net.TCPConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.dialed)
}

func (u *upstream) waitDead(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "dead idle connections", func() bool { d, _ := u.health(t); return d == n })
}

func (u *upstream) waitWithBytes(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "idle connections with bytes waiting", func() bool { _, b := u.health(t); return b == n })
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

// goroutine names the goroutine that calls it ("goroutine 42"): the only
// way Go shows which goroutine does a thing, here the pool's dials.
func goroutine() string {
	var b [64]byte
	f := strings.Fields(string(b[:runtime.Stack(b[:], false)]))
	return f[0] + " " + f[1]
}

// cpuWhile returns the CPU time the Go code of this process used while f
// ran, across all goroutines: what a goroutine that spins instead of
// waiting would burn. The runtime adds it up at each GC, so it forces one
// on both sides.
func cpuWhile(f func()) time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/user:cpu-seconds"}}
	runtime.GC()
	metrics.Read(s)
	before := s[0].Value.Float64()
	f()
	runtime.GC()
	metrics.Read(s)
	return time.Duration((s[0].Value.Float64() - before) * float64(time.Second))
}
