//go:build linux

package forward

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
	"github.com/warmport/warmport/session"
)

// Idle pairs cost the loop no goroutine at all, and come back to life in
// either direction, for half-close, and for abort.
func TestLoopIdlePairsHoldNoGoroutines(t *testing.T) {
	onLoop(t)
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
		if r.ClosedBy == session.ClosedByShutdown {
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
		if got := recordedClient(t, "[::1]:0", "::1", up.addr()); !strings.HasPrefix(got, "[::1]:") {
			t.Fatalf("record's client %q; want one from [::1]", got)
		}
	}

	// An IPv4 client of a dual-stack listener comes as an IPv4-mapped
	// address; the record shows it as IPv4, as net.TCPAddr would.
	if ln, err := net.Listen("tcp", "[::]:0"); err == nil {
		ln.Close()
		if got := recordedClient(t, "[::]:0", "127.0.0.1", up.addr()); !strings.HasPrefix(got, "127.0.0.1:") {
			t.Fatalf("record's client %q; want one from 127.0.0.1", got)
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

// A handshake that does not finish at once (the listener's accept queue is
// full, so its SYNs are dropped): the dialer waits in the netpoller, gives
// up at its deadline with Go's words, and otherwise connects once the
// listener makes room and the SYN is sent again (about a second later).
func TestLoopDialSlowHandshake(t *testing.T) {
	ln := blackholed(t)

	f, err := New(Config{Local: "127.0.0.1:0", Remote: ln.Addr().String(), DialTimeout: 150 * time.Millisecond, Pool: pool.Options{Warm: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Shutdown(context.Background())
	start := time.Now()
	_, err = f.dialUpstream(context.Background())
	want := "dial tcp " + ln.Addr().String() + ": i/o timeout"
	if err == nil || err.Error() != want {
		t.Fatalf("dial a listener that drops SYNs: %v; want %q", err, want)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("gave up after %v, before the 150ms dial timeout", waited)
	}

	f.cfg.DialTimeout = testTimeout
	type result struct {
		c   *sock
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := f.dialUpstream(context.Background())
		done <- result{c, err}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	eventually(t, "the dial's SYN to be dropped", func() bool { return synSent(t, port) > 0 })
	go func() { // make room in the queue: the SYN sent again is answered
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("dial once the listener makes room: %v", r.err)
	}
	r.c.Close()
}

// synSent counts this host's IPv4 sockets in SYN_SENT to port.
func synSent(t *testing.T, port string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	remote := fmt.Sprintf(":%04X", p)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[2], remote) && f[3] == "02" {
			n++
		}
	}
	return n
}

// Pairs are spread over the loops, one per P, each loop relaying its share
// in its own epoll set (as /proc shows the sets), and an upstream recycled
// on one loop serves the next client on another.
func TestLoopsShareThePairs(t *testing.T) {
	onLoop(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	before := epollSets(t)
	f, addr := startForwarder(t, Config{Remote: startHTTPUpstream(t), Reuse: recycle.HTTP, Pool: pool.Options{Warm: 1}})
	var loops []int // the epoll sets New opened: its loops'
	for fd := range epollSets(t) {
		if _, ok := before[fd]; !ok {
			loops = append(loops, fd)
		}
	}
	if len(loops) != 3 {
		t.Fatalf("New opened %d epoll sets with GOMAXPROCS 3; want 3, a loop per P", len(loops))
	}
	var held []*net.TCPConn
	for i := range 6 {
		c := dial(t, addr)
		msg := fmt.Sprint("held", i)
		if got, err := httpGet(c, bufio.NewReader(c), msg); err != nil || got != msg {
			t.Fatalf("client %d: %q, %v", i, got, err)
		}
		held = append(held, c)
	}
	sets := epollSets(t)
	used, pairs := 0, 0
	for _, fd := range loops {
		n := 0
		for _, k := range sets[fd] {
			if k != 0 && k%2 == 0 { // a pair's client; 0 is the loop's eventfd
				n++
			}
		}
		if n > 0 {
			used++
		}
		pairs += n
	}
	if used != 3 || pairs != 6 {
		t.Fatalf("6 open pairs: %d in the loops' epoll sets, on %d loops; want 6 on all 3", pairs, used)
	}
	for _, c := range held {
		c.Close()
	}
	// One at a time: each client's upstream goes back to the pool and the
	// next one, placed on the next loop, takes it.
	for i := range 6 {
		if got, err := httpOnce(addr, "r"); err != nil || got != "r" {
			t.Fatalf("sequential client %d: %q, %v", i, got, err)
		}
	}
	sum := shutdown(t, f, time.Second)
	reused := 0
	for _, r := range sum.Connections {
		if r.Source == pool.Reused.String() {
			reused++
		}
	}
	if reused == 0 {
		t.Fatalf("no client got a recycled upstream: %+v", sum.Connections)
	}
}

// epollSets returns this process's epoll fds, each with the keys (epoll
// data) of what it watches, as /proc/self/fdinfo lists them.
func epollSets(t *testing.T) map[int][]uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	sets := map[int][]uint64{}
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile: not one of ours
		}
		fd, _ := strconv.Atoi(e.Name())
		sets[fd] = []uint64{}
		for _, line := range strings.Split(string(info), "\n") {
			fields := strings.Fields(line) // tfd: FD events: HEX data: HEX pos: ...
			if len(fields) < 6 || fields[0] != "tfd:" || fields[4] != "data:" {
				continue
			}
			key, err := strconv.ParseUint(fields[5], 16, 64)
			if err != nil {
				t.Fatalf("fdinfo of epoll fd %d: %q: %v", fd, line, err)
			}
			sets[fd] = append(sets[fd], key)
		}
	}
	return sets
}

// recordedClient runs a forwarder on local to remote, makes one round trip
// through it from host (to the port it got), and returns the client address
// the connection's record shows.
func recordedClient(t *testing.T, local, host, remote string) string {
	t.Helper()
	f, err := New(Config{Local: local, Remote: remote, Pool: pool.Options{Warm: 0}})
	if err != nil {
		t.Fatal(err)
	}
	go f.Serve(context.Background())
	addr := net.JoinHostPort(host, strconv.Itoa(f.Addr().(*net.TCPAddr).Port))
	if got, err := echoOnce(addr, "hi"); err != nil || got != "hi" {
		t.Fatalf("through %s on %s: %q, %v", addr, local, got, err)
	}
	r := f.Shutdown(context.Background()).Connections
	if len(r) != 1 {
		t.Fatalf("records %+v; want one", r)
	}
	return r[0].Client
}
