package pool_test

import (
	"context"
	"errors"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/warmport/warmport/pool"
)

func TestNoDialStorm(t *testing.T) {
	const clients, warm, slack = 20, 2, 2
	u := startUpstream(t, echo)
	var reported atomic.Int64 // background dials that ended
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: warm, OnDial: func(error) { reported.Add(1) }})
	waitIdle(t, p, warm)

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, clients)
	conns := make(chan *net.TCPConn, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, _, _, err := p.Get(context.Background())
			if err != nil {
				errs <- err
				return
			}
			conns <- c // held until every client is served
			if err := roundTrip(c); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	close(conns)
	for err := range errs {
		t.Error(err)
	}
	// Refilled to Warm, no background dial is left to start; every one
	// that did has ended once all dials but the misses' are reported.
	waitFor(t, "background dials to finish", func() bool {
		s := p.Stats()
		return s.Idle == warm && uint64(reported.Load()) == s.Dials-s.Misses
	})
	for c := range conns {
		c.Close()
	}
	s := p.Stats()
	waitFor(t, "the upstream to accept every dial", func() bool { return uint64(u.Accepted()) == s.Dials })
	if got := u.Accepted(); got > clients+warm+slack {
		t.Fatalf("upstream accepted %d; want at most %d", got, clients+warm+slack)
	}
	if s.Hits+s.Misses != clients || s.Idle > warm {
		t.Fatalf("Hits+Misses, Idle: got %d, %d; want %d, at most %d", s.Hits+s.Misses, s.Idle, clients, warm)
	}
}

func TestUpstreamDownNoRefillLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // dials are now refused

	var attempts, failed atomic.Int64 // dials tried; background ones that failed
	dial := func(ctx context.Context) (*net.TCPConn, error) {
		attempts.Add(1)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	onDial := func(err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	clk := newClock()
	p := newPool(t, Config[*net.TCPConn]{Dial: dial, Warm: 2, TTL: 50 * time.Millisecond, OnDial: onDial, Now: clk.Now})
	waitFor(t, "the first fill to fail", func() bool { return failed.Load() == 2 })
	// No signal announces a dial that should not happen: watch for a while.
	const window = 100 * time.Millisecond
	time.Sleep(window)
	clk.set(clk.Now().Add(time.Hour)) // long past the TTL: a reap that refilled would dial
	p.Reap()
	if got := attempts.Load(); got != 2 {
		t.Fatalf("dial attempts after a failed fill: got %d; want 2", got)
	}

	// A Get makes one attempt, fails, and does not start a refill round.
	_, src, _, err := p.Get(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), "dial upstream: ") || src != Cold {
		t.Fatalf("Get: got %v, %v; want cold, dial upstream: ... connection refused", src, err)
	}
	time.Sleep(window) // a background dial it started would be an attempt by now
	if got := attempts.Load(); got != 3 {
		t.Fatalf("dial attempts: got %d; want 3", got)
	}

	// The upstream comes back: the next Get warms the pool again.
	startUpstreamAt(t, addr, echo)
	c := mustGet(t, p, Cold)
	c.Close()
	waitIdle(t, p, 2)
}

func TestCloseLeavesNothing(t *testing.T) {
	u := startUpstream(t, echo)
	g0, fd0 := runtime.NumGoroutine(), openFDs()

	p, err := New(Config[*net.TCPConn]{Dial: u.dial, Warm: 3})
	if err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p, 3)
	c := mustGet(t, p, Warm)
	mustRoundTrip(t, c)
	waitIdle(t, p, 3) // the refill landed: c, put back, is then the newest
	if err := p.Put(c); err != nil {
		t.Fatalf("Put: %v", err)
	}
	mustGet(t, p, Reused).Close()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	waitFor(t, "the upstream to see every connection closed", func() bool { return u.Open() == 0 })
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= g0 })
	if fd0 >= 0 {
		waitFor(t, "file descriptors back to the baseline", func() bool { return openFDs() <= fd0 })
	}
	if s := p.Stats(); s.Idle != 0 {
		t.Fatalf("Idle after Close: got %d; want 0", s.Idle)
	}
}

func TestCloseCancelsDials(t *testing.T) {
	g0 := runtime.NumGoroutine()
	started := make(chan struct{}, 2)
	var inFlight atomic.Int64
	dial := func(ctx context.Context) (*net.TCPConn, error) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p, err := New(Config[*net.TCPConn]{Dial: dial, Warm: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(waitTimeout):
			t.Fatal("background dials never started")
		}
	}
	p.Close() // returns only once both dials gave up
	if got := inFlight.Load(); got != 0 {
		t.Fatalf("dials in flight after Close: got %d; want 0", got)
	}
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= g0 })
}

func TestAfterClose(t *testing.T) {
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 1})
	waitIdle(t, p, 1)
	for i := range 2 {
		if err := p.Close(); err != nil {
			t.Fatalf("Close %d: got %v; want nil", i, err)
		}
	}
	c := mustGet(t, p, Cold) // still dials
	mustRoundTrip(t, c)
	if err := p.Put(c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put: got %v; want %v", err, ErrClosed)
	}
	if _, err := c.Write([]byte{'x'}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Put: got %v; want %v", err, net.ErrClosed)
	}
	// No signal announces a refill that should not happen: watch a while.
	time.Sleep(50 * time.Millisecond)
	if s := p.Stats(); s.Idle != 0 || s.Dials != 2 {
		t.Fatalf("Idle, Dials: got %d, %d; want 0, 2 (no refill after Close)", s.Idle, s.Dials)
	}
}

// A background dialer with nothing left to dial waits for the next refill
// instead of exiting: under a steady run of borrows one goroutine does every
// dial, and while it waits it takes no CPU. Close wakes a waiting dialer at
// once, not after DialerLinger.
func TestDialerWaitsForWork(t *testing.T) {
	u := startUpstream(t, echo)
	var mu sync.Mutex
	dialsBy := map[string]int{} // dials made by each goroutine
	dial := func(ctx context.Context) (*net.TCPConn, error) {
		mu.Lock()
		dialsBy[goroutine()]++
		mu.Unlock()
		return u.dial(ctx)
	}
	g0 := runtime.NumGoroutine()
	p, err := New(Config[*net.TCPConn]{Dial: dial, Warm: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitIdle(t, p, 1)
	for i := range 20 {
		c, src, ok := p.TryGet()
		if !ok || src != Warm {
			t.Fatalf("borrow %d: ok %v, source %v; want a warm one", i, ok, src)
		}
		c.Close()
		waitIdle(t, p, 1)
	}
	if d := p.Stats().Dials; d != 21 {
		t.Fatalf("dials: got %d; want 21 (one, then one per borrow)", d)
	}
	mu.Lock()
	if len(dialsBy) != 1 {
		t.Errorf("dials by goroutine: got %v; want all 21 by one dialer", dialsBy)
	}
	mu.Unlock()
	// No signal tells a waiting goroutine from a spinning one: watch the
	// process's CPU for a while, with nothing to do but wait. A spinning
	// dialer burns a whole window each time; a waiting pool next to none,
	// though a loaded machine can stall the runtime once: take the least of
	// three looks.
	const window = 300 * time.Millisecond
	least := time.Duration(math.MaxInt64)
	for range 3 {
		if least = min(least, cpuWhile(func() { time.Sleep(window) })); least < window/2 {
			break
		}
	}
	if least >= window/2 {
		t.Errorf("CPU used by an idle pool in %v: got %v; want next to none (a waiting dialer sleeps)", window, least)
	}

	// Half the linger: the dialer began to wait less than that ago, so a
	// Close that waited out its linger takes longer.
	start := time.Now()
	p.Close()
	if waited := time.Since(start); waited >= DialerLinger/2 {
		t.Fatalf("Close took %v: it waited out the dialer's linger", waited)
	}
	// A dialer Close did not wake would still wait for its linger.
	deadline := time.Now().Add(DialerLinger / 2)
	for runtime.NumGoroutine() > g0 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %v after Close: got %d; want at most %d, as before New", DialerLinger/2, runtime.NumGoroutine(), g0)
		}
		time.Sleep(waitTick)
	}
}
