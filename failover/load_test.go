package failover

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a 127.0.0.1 listener that counts its accepts and can be
// closed and reopened on the same port.
type upstream struct {
	addr    string
	ln      net.Listener
	accepts atomic.Int64
	wg      sync.WaitGroup

	mu      sync.Mutex
	waiters []waiter
}

// waiter is a channel closed when accepts reaches n.
type waiter struct {
	n  int64
	ch chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.open(t, "127.0.0.1:0")
	u.addr = u.ln.Addr().String()
	t.Cleanup(u.close)
	return u
}

func (u *upstream) open(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	u.ln = ln
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.counted(u.accepts.Add(1))
			c.Close()
		}
	}()
}

func (u *upstream) close() {
	if u.ln != nil {
		u.ln.Close()
		u.wg.Wait()
		u.ln = nil
	}
}

func (u *upstream) counted(n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	kept := u.waiters[:0]
	for _, w := range u.waiters {
		if n >= w.n {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	u.waiters = kept
}

// waitAccepts waits (bounded) until u has accepted n more connections
// than from.
func waitAccepts(t *testing.T, u *upstream, from, n int64, what string) {
	t.Helper()
	w := waiter{from + n, make(chan struct{})}
	u.mu.Lock()
	u.waiters = append(u.waiters, w)
	u.mu.Unlock()
	u.counted(u.accepts.Load())
	select {
	case <-w.ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: %s accepted %d within 20 s; want %d", what, u.addr, u.accepts.Load()-from, n)
	}
}

// 100 clients dial all the time; the first candidate goes away and comes
// back. Not one dial fails, the second candidate serves meanwhile, the first
// serves again once back, and each change is one line.
func TestFailoverUnderLoad(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	var mu sync.Mutex
	var lines []string
	s := New[net.Conn]([]string{a.addr, b.addr}, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	s.base = 20 * time.Millisecond // the real clock, with back-offs short enough for a test
	back := make(chan struct{}, 1)
	s.OnUp = func(string) { back <- struct{}{} }

	var d net.Dialer
	dialOne := func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	var failed, served, servedByB atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, addr, err := s.Dial(context.Background(), dialOne)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				served.Add(1)
				if addr == b.addr {
					servedByB.Add(1)
				}
				c.Close()
			}
		}()
	}
	waitAccepts(t, a, 0, 300, "both up")
	if got := b.accepts.Load(); got != 0 {
		t.Errorf("b accepted %d while a was up; want 0 (a is first)", got)
	}

	a.close()
	waitAccepts(t, b, 0, 300, "a down")

	a.open(t, a.addr)
	select {
	case <-back:
	case <-time.After(20 * time.Second):
		t.Fatal("a not back within 20 s of reopening")
	}
	fromA, fromB := a.accepts.Load(), servedByB.Load()
	waitAccepts(t, a, fromA, 300, "a back")
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d dials failed (first: %v); want 0 while one candidate is up", n, n+served.Load(), firstErr.Load())
	}
	// Only the dials already past plan when a came back go to b: one per
	// client at most.
	if got := servedByB.Load() - fromB; got > 100 {
		t.Errorf("b served %d dials after a was back; want a to serve (at most the dials in flight)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 2 || !strings.Contains(lines[0], a.addr+" is down") || !strings.Contains(lines[1], a.addr+" is back") {
		t.Errorf("lines %q; want one down and one back for %s", lines, a.addr)
	}
}
