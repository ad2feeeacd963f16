//go:build wpgoroutines

package forward

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
)

// shortPark makes directions park after 5 ms for the rest of the test.
func shortPark(t *testing.T) {
	old := parkAfter
	parkAfter = 5 * time.Millisecond
	t.Cleanup(func() { parkAfter = old })
}

func parkedCount(f *Forwarder) int {
	f.parker.mu.Lock()
	defer f.parker.mu.Unlock()
	return len(f.parker.parked)
}

// overBudget makes every idle direction park at once, as when waitBudget
// directions already wait in the netpoller, and never after parkAfter.
func overBudget(t *testing.T) {
	oldAfter, oldBudget := parkAfter, waitBudget
	parkAfter, waitBudget = time.Hour, 0
	t.Cleanup(func() { parkAfter, waitBudget = oldAfter, oldBudget })
}

// Idle pairs give up their goroutines, and come back to life in either
// direction, for half-close, and for abort, all while parked: whether they
// parked after parkAfter or at once, over the wait budget.
func TestParkedPairs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testing.T)
	}{
		{"after parkAfter", shortPark},
		{"over the wait budget", overBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			testParkedPairs(t)
		})
	}
}

func testParkedPairs(t *testing.T) {
	up := startUpstream(t, echo)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	const pairs = 50
	base := runtime.NumGoroutine()
	conns := make([]*bufio.ReadWriter, pairs)
	raw := make([]interface{ CloseWrite() error }, pairs)
	for i := range pairs {
		c := dial(t, addr)
		conns[i] = bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
		raw[i] = c
		fmt.Fprintf(conns[i], "hello %d\n", i)
		conns[i].Flush()
		if line, err := conns[i].ReadString('\n'); err != nil || line != fmt.Sprintf("hello %d\n", i) {
			t.Fatalf("pair %d: %q, %v", i, line, err)
		}
	}
	eventually(t, "every direction parked", func() bool { return parkedCount(f) == 2*pairs })
	// The test's own upstream holds a goroutine per connection; the
	// forwarder's pairs hold none.
	if g := runtime.NumGoroutine(); g > base+pairs+8 {
		t.Errorf("%d goroutines with %d parked pairs (base %d); want at most %d", g, pairs, base, base+pairs+8)
	}
	for round := range 3 { // each round wakes every pair from its parking
		for i, rw := range conns {
			fmt.Fprintf(rw, "round %d pair %d\n", round, i)
			rw.Flush()
		}
		for i, rw := range conns {
			want := fmt.Sprintf("round %d pair %d\n", round, i)
			if line, err := rw.ReadString('\n'); err != nil || line != want {
				t.Fatalf("after parking: pair %d got %q, %v; want %q", i, line, err, want)
			}
		}
		eventually(t, "parked again", func() bool { return parkedCount(f) == 2*pairs })
	}
	// Half-close a parked pair: the echo upstream sees EOF and closes, and
	// the client reads EOF.
	raw[0].CloseWrite()
	if rest, err := io.ReadAll(conns[0]); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v; want EOF", rest, err)
	}
	eventually(t, "pair 0 done", func() bool { return f.Active() == pairs-1 })
	sum := shutdown(t, f, 10*time.Millisecond) // the rest are parked: shutdown must wake and end them
	if got := sum.Totals.Connections; got != pairs {
		t.Fatalf("%d connections; want %d", got, pairs)
	}
	for _, r := range sum.Connections {
		want := ClosedByShutdown
		if r.ID == sum.Connections[0].ID {
			want = ClosedByClient
		}
		if r.ClosedBy != want {
			t.Errorf("record %d closed by %q (%s); want %q", r.ID, r.ClosedBy, r.Error, want)
		}
	}
	if n := parkedCount(f); n != 0 {
		t.Errorf("%d directions still parked after shutdown; want 0", n)
	}
	if n := f.waiting.Load(); n != 0 {
		t.Errorf("%d directions still counted waiting after shutdown; want 0", n)
	}
}

func TestParkedIdleTimeoutAndReuse(t *testing.T) {
	shortPark(t)
	up := startUpstream(t, echo)
	t.Run("idle timeout", func(t *testing.T) {
		f, addr := startForwarder(t, Config{Remote: up.addr(), IdleTimeout: 100 * time.Millisecond, Pool: pool.Options{Warm: 0}})
		c := dial(t, addr)
		c.Write([]byte("x"))
		c.Read(make([]byte, 1))
		// The timeout resets it while parked: an abort is never a clean EOF.
		if b, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) || len(b) != 0 {
			t.Fatalf("read %q, %v; want a reset from the idle timeout", b, err)
		}
		sum := shutdown(t, f, time.Second)
		if r := sum.Connections; len(r) != 1 || r[0].ClosedBy != ClosedByTimeout {
			t.Fatalf("records %+v; want one closed by timeout", r)
		}
	})
	t.Run("reuse after parking", func(t *testing.T) {
		f, addr := startForwarder(t, Config{Remote: startHTTPUpstream(t), Reuse: recycle.HTTP, Pool: pool.Options{Warm: 0}})
		for i := range 5 {
			c := dial(t, addr)
			if got, err := httpGet(c, bufio.NewReader(c), "ping"); err != nil || got != "ping" {
				t.Fatalf("got %q, %v; want ping", got, err)
			}
			eventually(t, "both directions parked", func() bool { return parkedCount(f) == 2 })
			c.Close() // upstreamToClient is parked: the recycle must wake it
			want := uint64(i + 1)
			eventually(t, "recycled", func() bool { return f.pool.Stats().Reused == want })
		}
		sum := shutdown(t, f, time.Second)
		if sum.Pool.Reused != 5 || sum.Pool.Hits != 4 {
			t.Fatalf("pool %+v; want 5 recycled and 4 borrowed back", sum.Pool)
		}
	})
}
