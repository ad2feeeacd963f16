package pool_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	. "github.com/warmport/warmport/pool"
)

// clock is a pool's own clock (Config.Now), moved by the test alone: the
// pool then has no reaper, and a connection expires when the test says.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// gatedDial dials u once per value received from gate (all at once when
// gate is closed), so the test decides when, on its clock, each connection
// joins the pool. A dial no one lets through fails after waitTimeout.
func (u *upstream) gatedDial(gate <-chan struct{}) func(context.Context) (*net.TCPConn, error) {
	return func(ctx context.Context) (*net.TCPConn, error) {
		select {
		case <-gate:
			return u.dial(ctx)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(waitTimeout):
			return nil, errors.New("gatedDial: not let through")
		}
	}
}

// letDial lets one dial of gatedDial(gate) through.
func letDial(t *testing.T, gate chan<- struct{}) {
	t.Helper()
	select {
	case gate <- struct{}{}:
	case <-time.After(waitTimeout):
		t.Fatal("the pool never dialed")
	}
}

// On the system's clock, the reaper closes idle connections when their TTL
// is up: no Get came, so none is replaced; the next Get warms the pool again.
func TestTTLDrainsToZeroAndRewarms(t *testing.T) {
	const ttl = 150 * time.Millisecond
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 2, TTL: ttl})
	waitFor(t, "2 connections accepted", func() bool { return u.Accepted() == 2 })

	// No Get came: both expire, the upstream sees them closed, none replaced.
	waitFor(t, "0 open upstream connections", func() bool { return u.Open() == 0 })
	// No signal announces a replacement that should not happen: watch a while.
	time.Sleep(50 * time.Millisecond)
	if s := p.Stats(); s.Expired != 2 || s.Idle != 0 || s.Dials != 2 {
		t.Fatalf("Expired, Idle, Dials: got %d, %d, %d; want 2, 0, 2", s.Expired, s.Idle, s.Dials)
	}

	// The next client is a miss and warms the pool up again.
	c := mustGet(t, p, Cold)
	defer c.Close()
	mustRoundTrip(t, c)
	// 2 expired + this one + the refill (which may already be replacing).
	waitFor(t, "5 upstream connections accepted", func() bool { return u.Accepted() >= 5 })
	waitFor(t, "3 open upstream connections", func() bool { return u.Open() >= 3 })
	if s := p.Stats(); s.Misses != 1 {
		t.Fatalf("Misses: got %d; want 1", s.Misses)
	}
}

func TestReapReplacesOnlyWhileActive(t *testing.T) {
	const ttl = time.Minute
	for _, tt := range []struct {
		name    string
		lastGet time.Duration // before the reap; 0 = no Get ever
		want    int           // idle connections afterwards
	}{
		{"a Get within the TTL", ttl / 2, 2},
		{"no Get for a whole TTL", ttl + time.Second, 0},
		{"no Get ever", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := startUpstream(t, echo)
			clk := newClock()
			t0 := clk.Now()
			reapAt := t0.Add(ttl) // past every deadline of a connection added at t0
			gate := make(chan struct{})
			p := newPool(t, Config[*net.TCPConn]{Dial: u.gatedDial(gate), Warm: 2, TTL: ttl, Now: clk.Now})
			if tt.lastGet != 0 {
				// The Get comes while the warm dials wait, so it takes
				// none of them; on the clock it is tt.lastGet before the
				// reap, though they join the pool at t0.
				clk.set(reapAt.Add(-tt.lastGet))
				if c, _, ok := p.TryGet(); ok {
					t.Fatalf("TryGet: got %v; want nothing idle yet", c.LocalAddr())
				}
			}
			clk.set(t0)
			close(gate)
			waitIdle(t, p, 2)

			clk.set(reapAt)
			p.Reap()
			if s := p.Stats(); s.Expired != 2 {
				t.Fatalf("Expired after the reap: got %d; want 2", s.Expired)
			}
			waitIdle(t, p, tt.want)
			u.WaitOpen(t, tt.want)
			p.Close() // waits for every dial the reap started
			if s := p.Stats(); s.Dials != uint64(2+tt.want) {
				t.Fatalf("Dials: got %d; want %d", s.Dials, 2+tt.want)
			}
		})
	}
}

// Get checks a connection's age itself rather than trusting a reaper to have
// closed it in time: here no reaper runs, and the newest idle connection is
// past its deadline.
func TestGetSkipsExpired(t *testing.T) {
	u := startUpstream(t, echo)
	clk := newClock()
	t0 := clk.Now()
	gate := make(chan struct{})
	p := newPool(t, Config[*net.TCPConn]{Dial: u.gatedDial(gate), Warm: 2, TTL: time.Minute, Now: clk.Now})
	letDial(t, gate)
	waitIdle(t, p, 1) // the oldest, at t0: alive until t0 + 51 s at least
	clk.set(t0.Add(-time.Minute))
	letDial(t, gate)
	waitIdle(t, p, 2) // the newest, dead from t0 on
	oldest, newest := u.conns()[0], u.conns()[1]
	clk.set(t0.Add(time.Millisecond))

	c := mustGet(t, p, Warm)
	defer c.Close()
	if c != oldest {
		t.Fatalf("Get: got %v; want the unexpired %v", c.LocalAddr(), oldest.LocalAddr())
	}
	waitClosed(t, u, newest)
	if s := p.Stats(); s.Expired != 1 || s.Hits != 1 {
		t.Fatalf("Expired, Hits: got %d, %d; want 1, 1", s.Expired, s.Hits)
	}
}

// Each connection's deadline lies within [0.85, 1] * TTL of its arrival, and
// they differ, so connections dialed together do not expire together: step
// the clock across that span, reaping at each step.
func TestLifetimeSpread(t *testing.T) {
	const ttl, steps = time.Minute, 1000
	u := startUpstream(t, echo)
	clk := newClock()
	t0 := clk.Now()
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: DefaultMax, TTL: ttl, Now: clk.Now})
	waitIdle(t, p, DefaultMax) // all at t0: the clock stands still

	lo, span := t0.Add(ttl*85/100), ttl*15/100
	clk.set(lo.Add(-time.Nanosecond))
	p.Reap()
	if got := p.Stats().Expired; got != 0 {
		t.Errorf("expired before 0.85 * %v: got %d; want 0", ttl, got)
	}
	moments := 0 // steps at which some connection expired
	for i, prev := 0, uint64(0); i <= steps; i++ {
		clk.set(lo.Add(span * time.Duration(i) / steps))
		p.Reap()
		if e := p.Stats().Expired; e != prev {
			moments, prev = moments+1, e
		}
	}
	if got := p.Stats().Expired; got != DefaultMax {
		t.Errorf("expired by %v: got %d; want all %d", ttl, got, DefaultMax)
	}
	if moments < 2 {
		t.Errorf("moments at which connections expired: got %d; want them spread", moments)
	}
}
