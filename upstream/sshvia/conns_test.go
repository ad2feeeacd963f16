package sshvia

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tunnel's several connections: where new channels go, and how a loss
// of one or all of them reads.

// waitConns waits until every keeper of tun has a connection.
func waitConns(t testing.TB, tun *Tunnel) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		tun.mu.Lock()
		live := 0
		for _, c := range tun.conns {
			if c != nil && c.dropped() == nil {
				live++
			}
		}
		n, ready := len(tun.conns), tun.ready
		tun.mu.Unlock()
		if live == n {
			return
		}
		select {
		case <-ready:
		case <-timeout:
			t.Fatalf("%d of %d connections up after 10s", live, n)
		}
	}
}

// openAll opens a tunnel of n connections to s and waits for all of them.
// Its channels are spread as over a long round trip, though s is on
// loopback, unless e says otherwise.
func openAll(t testing.TB, e *testEnv, s *testServer, n int) *Tunnel {
	t.Helper()
	e.cfg.Conns = n
	if e.cfg.spreadRTT == 0 {
		e.cfg.spreadRTT = time.Nanosecond
	}
	tun := openTunnel(t, e, "tester@"+s.addr)
	waitConns(t, tun)
	return tun
}

// dialTwo dials a and then b to target, which go to two connections: the
// one written to longest ago, then the other, as a's open was written last.
func dialTwo(t testing.TB, tun *Tunnel, target string) (a, b *Channel) {
	t.Helper()
	a, b = dial(t, tun, target), dial(t, tun, target)
	if a.LocalAddr().String() == b.LocalAddr().String() {
		t.Fatalf("a and b both on %v; want two connections", a.LocalAddr())
	}
	return a, b
}

// TestConnsOpened: Config.Conns connections reach the server, one for 0.
func TestConnsOpened(t *testing.T) {
	for _, tt := range []struct{ conns, want int }{{0, defaultConns}, {1, 1}, {3, 3}} {
		t.Run(fmt.Sprint(tt.conns), func(t *testing.T) {
			e := newEnv(t)
			s := serverFor(t, e)
			e.cfg.Conns = tt.conns
			waitConns(t, openTunnel(t, e, "tester@"+s.addr))
			s.mu.Lock()
			got := len(s.conns)
			s.mu.Unlock()
			if got != tt.want {
				t.Fatalf("connections at the server: got %d; want %d", got, tt.want)
			}
		})
	}
}

// TestDialSpreadsOverConnections: channels dialed one after another each go
// to the connection written to longest ago, so three dials use three
// connections, and each relays.
func TestDialSpreadsOverConnections(t *testing.T) {
	e := newEnv(t)
	tun := openAll(t, e, serverFor(t, e), 3)
	target := startTarget(t, echo)
	seen := map[string]bool{}
	var chans []*Channel
	for range 3 {
		ch := dial(t, tun, target)
		seen[ch.LocalAddr().String()] = true
		chans = append(chans, ch)
	}
	if len(seen) != 3 {
		t.Fatalf("got channels on %d connections %v; want 3", len(seen), seen)
	}
	for i, ch := range chans {
		msg := []byte(strings.Repeat("x", i+1))
		roundTrip(t, ch, msg, msg)
	}
}

// TestNearServerOneConnection: once a channel open has shown a round trip
// under the spread threshold, new channels stay on the first connection,
// however recently it was written to or borrowed from.
func TestNearServerOneConnection(t *testing.T) {
	e := newEnv(t)
	e.cfg.spreadRTT = time.Hour // any round trip is near
	tun := openAll(t, e, serverFor(t, e), 3)
	target := startTarget(t, echo)
	dial(t, tun, target) // the first open measures the round trip
	seen := map[string]bool{}
	for range 3 {
		ch := dial(t, tun, target)
		ch.Probe() // borrowed: over a long round trip this would steer the next one away
		seen[ch.LocalAddr().String()] = true
	}
	if len(seen) != 1 {
		t.Fatalf("got channels on %d connections %v; want 1", len(seen), seen)
	}
}

// TestAwaitingSteersDial: a channel handed to a client (probed) whose first
// reply has not come keeps new channels off its connection, even when that
// connection is the one written to longest ago; its reply ends that.
func TestAwaitingSteersDial(t *testing.T) {
	e := newEnv(t)
	tun := openAll(t, e, serverFor(t, e), 2)
	target := startTarget(t, echo)
	a, b := dialTwo(t, tun, target)
	if err := a.Probe(); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	c := dial(t, tun, target)
	if got, want := c.LocalAddr().String(), b.LocalAddr().String(); got != want {
		t.Fatalf("c on %v; want %v, not a's connection, where a awaits its first reply", got, want)
	}
	if got := a.conn.awaiting.Load(); got != 1 {
		t.Fatalf("awaiting on a's connection: got %d; want 1", got)
	}
	roundTrip(t, a, []byte("ping"), []byte("ping"))
	if got := a.conn.awaiting.Load(); got != 0 {
		t.Fatalf("awaiting on a's connection after its reply: got %d; want 0", got)
	}
}

// TestAwaitingEndsWithoutReply: a borrowed channel that is closed, aborted
// or reads only its target's EOF awaits nothing any more.
func TestAwaitingEndsWithoutReply(t *testing.T) {
	e := newEnv(t)
	tun := openAll(t, e, serverFor(t, e), 1)
	for _, tt := range []struct {
		name string
		end  func(t *testing.T, ch *Channel)
	}{
		{"close", func(_ *testing.T, ch *Channel) { ch.Close() }},
		{"abort", func(_ *testing.T, ch *Channel) { ch.Abort() }},
		{"eof", func(t *testing.T, ch *Channel) {
			ch.CloseWrite()
			if _, err := io.ReadAll(ch); err != nil {
				t.Errorf("ReadAll: %v", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := dial(t, tun, startTarget(t, echo))
			if err := ch.Probe(); err != nil {
				t.Fatalf("Probe: %v", err)
			}
			ch.Probe() // a second probe counts once
			if got := ch.conn.awaiting.Load(); got != 1 {
				t.Fatalf("awaiting after Probe: got %d; want 1", got)
			}
			tt.end(t, ch)
			if got := ch.conn.awaiting.Load(); got != 0 {
				t.Fatalf("awaiting after %s: got %d; want 0", tt.name, got)
			}
		})
	}
}

// TestOneConnectionLost: a connection that drops alone fails only its own
// channels; the others' channels go on, new channels avoid the lost one,
// and its keeper brings it back, with one line each way.
func TestOneConnectionLost(t *testing.T) {
	e := newEnv(t)
	tun := openAll(t, e, serverFor(t, e), 2)
	target := startTarget(t, echo)
	a, b := dialTwo(t, tun, target)
	a.conn.close(errors.New("cut for the test"))
	if _, err := a.Read(make([]byte, 1)); !IsDropped(err) {
		t.Fatalf("Read on a: got %v; want an error wrapping ErrDropped", err)
	}
	if line := e.waitLog(t, "connection lost"); !strings.Contains(line, "cut for the test") {
		t.Fatalf("got %q; want the reason in it", line)
	}
	roundTrip(t, b, []byte("still here"), []byte("still here"))
	e.waitLog(t, "reconnected")
	waitConns(t, tun)
	roundTrip(t, dial(t, tun, target), []byte("new"), []byte("new"))
}

// TestAllConnectionsLost: a server that drops every connection at once is
// one loss and one recovery, in one line each, and OnReconnect is called
// once.
func TestAllConnectionsLost(t *testing.T) {
	e := newEnv(t)
	e.cfg.backoff = 20 * time.Millisecond
	reconnects := make(chan struct{}, 8)
	e.cfg.OnReconnect = func() { reconnects <- struct{}{} }
	var lost, back atomic.Int32
	logf := e.cfg.Logf
	e.cfg.Logf = func(f string, a ...any) {
		switch l := fmt.Sprintf(f, a...); {
		case strings.Contains(l, "connection lost"):
			lost.Add(1)
		case strings.Contains(l, "reconnected"):
			back.Add(1)
		}
		logf(f, a...)
	}
	s := serverFor(t, e)
	tun := openAll(t, e, s, 3)
	s.stop()
	e.waitLog(t, "connection lost")
	startServer(t, s.addr, s.hostKey, e.key)
	e.waitLog(t, "reconnected")
	waitConns(t, tun)
	tun.Close() // no keeper logs after this
	if lost.Load() != 1 || back.Load() != 1 {
		t.Errorf("lines: got %d lost and %d reconnected; want 1 and 1", lost.Load(), back.Load())
	}
	if got := len(reconnects); got != 1 {
		t.Errorf("OnReconnect calls: got %d; want 1", got)
	}
}

// TestOneRedialsWhileDown: while no connection is up, one keeper redials
// and the others wait for it; once it is back they connect too.
func TestOneRedialsWhileDown(t *testing.T) {
	e := newEnv(t)
	e.cfg.backoff = 20 * time.Millisecond
	parked := make(chan struct{}, 64)
	e.cfg.parked = func() {
		select {
		case parked <- struct{}{}:
		default:
		}
	}
	s := serverFor(t, e)
	tun := openAll(t, e, s, 3)
	s.stop()
	select {
	case <-parked:
	case <-time.After(10 * time.Second):
		t.Fatal("no keeper waited for another's redial in 10s")
	}
	startServer(t, s.addr, s.hostKey, e.key)
	e.waitLog(t, "reconnected")
	waitConns(t, tun)
}

// TestOneConnectionServer: a server that takes one connection at a time
// leaves the tunnel working on that one, said once and not as a
// reconnect; when it drops, another keeper's connection is a recovery.
func TestOneConnectionServer(t *testing.T) {
	e := newEnv(t)
	e.cfg.backoff = 20 * time.Millisecond
	s := serverFor(t, e)
	addr := oneAtATime(t, s.addr)
	e.trust(t, portOf(addr), s.hostKey.PublicKey())
	e.cfg.Conns = 3
	tun := openTunnel(t, e, "tester@"+addr)
	line := e.waitLog(t, "failed")
	if !strings.Contains(line, "another connection failed") || !strings.Contains(line, "the others carry on") {
		t.Fatalf("got %q; want it said as another connection, not a reconnect", line)
	}
	target := startTarget(t, echo)
	ch := dial(t, tun, target)
	roundTrip(t, ch, []byte("one"), []byte("one"))
	ch.conn.close(errors.New("cut for the test"))
	e.waitLog(t, "connection lost")
	e.waitLog(t, "reconnected")
	roundTrip(t, dial(t, tun, target), []byte("two"), []byte("two"))
}

// oneAtATime relays one connection at a time to target and closes any that
// comes while one is relayed, as a server with a limit of one would.
func oneAtATime(t testing.TB, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	busy := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case busy <- struct{}{}:
			default:
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				<-busy
				continue
			}
			var once sync.Once
			end := func() { c.Close(); up.Close(); once.Do(func() { <-busy }) }
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); end() }()
			go func() { defer wg.Done(); io.Copy(c, up); end() }()
		}
	}()
	return ln.Addr().String()
}

// TestFailureKey: tries that fail alike from different local ports are one
// failure to report; different failures stay apart.
func TestFailureKey(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"ssh: handshake failed: read tcp 127.0.0.1:41522->10.0.0.5:22: read: connection reset by peer",
			"ssh: handshake failed: read tcp 127.0.0.1:41530->10.0.0.5:22: read: connection reset by peer", true},
		{"ssh: handshake failed: read tcp [::1]:41522->[::1]:22: i/o timeout",
			"ssh: handshake failed: read tcp [::1]:2->[::1]:22: i/o timeout", true},
		{"dial tcp 10.0.0.5:22: connect: connection refused", "dial tcp 10.0.0.5:22: connect: connection refused", true},
		{"read tcp 127.0.0.1:1->10.0.0.5:22: read: connection reset by peer",
			"read tcp 127.0.0.1:1->10.0.0.6:22: read: connection reset by peer", false},
		{"dial tcp 10.0.0.5:22: connect: connection refused", "dial tcp 10.0.0.5:22: i/o timeout", false},
	} {
		if got := failureKey(tt.a) == failureKey(tt.b); got != tt.same {
			t.Errorf("%q and %q the same: got %v; want %v", tt.a, tt.b, got, tt.same)
		}
	}
}
