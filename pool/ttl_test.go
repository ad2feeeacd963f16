package pool

import (
	"net"
	"testing"
	"time"
)

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
	const ttl = time.Minute // the real reaper stays out of the way
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
			p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 2, TTL: ttl})
			waitIdle(t, p, 2)
			now := time.Now().Add(ttl) // past every deadline
			p.mu.Lock()
			if tt.lastGet != 0 {
				p.lastGet = now.Add(-tt.lastGet)
			}
			p.mu.Unlock()

			p.reap(now)
			p.mu.Lock()
			idle, dialing := p.idle.Len(), p.dialing
			p.mu.Unlock()
			// The replacements may already have landed.
			if idle+dialing != tt.want {
				t.Fatalf("idle+dialing after the reap: got %d; want %d", idle+dialing, tt.want)
			}
			waitIdle(t, p, tt.want)
			waitFor(t, "open upstream connections", func() bool { return u.Open() == tt.want })
			if s := p.Stats(); s.Expired != 2 || s.Dials != uint64(2+tt.want) {
				t.Fatalf("Expired, Dials: got %d, %d; want 2, %d", s.Expired, s.Dials, 2+tt.want)
			}
		})
	}
}

func TestGetSkipsExpired(t *testing.T) {
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 2, TTL: time.Minute})
	waitIdle(t, p, 2)
	// Expire the newest behind the reaper's back: Get must check the age.
	p.mu.Lock()
	keys := p.idle.Keys()
	newest, _ := p.idle.Peek(keys[len(keys)-1])
	newest.deadline = time.Now().Add(-time.Millisecond)
	oldest, _ := p.idle.Peek(keys[0])
	p.mu.Unlock()

	c := mustGet(t, p, Warm)
	defer c.Close()
	if c != oldest.c {
		t.Fatalf("Get: got %v; want the unexpired %v", c.LocalAddr(), oldest.c.LocalAddr())
	}
	waitClosed(t, u, newest.c)
	if s := p.Stats(); s.Expired != 1 || s.Hits != 1 {
		t.Fatalf("Expired, Hits: got %d, %d; want 1, 1", s.Expired, s.Hits)
	}
}

func TestLifetimeSpread(t *testing.T) {
	const ttl = time.Minute
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: DefaultMax, TTL: ttl})
	start := time.Now()
	waitIdle(t, p, DefaultMax)
	end := time.Now()

	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[time.Time]bool{}
	for _, id := range p.idle.Keys() {
		ic, _ := p.idle.Peek(id)
		lo, hi := start.Add(ttl*85/100), end.Add(ttl)
		if ic.deadline.Before(lo) || ic.deadline.After(hi) {
			t.Errorf("deadline: got now+%v; want within [0.85, 1] * %v", ic.deadline.Sub(start), ttl)
		}
		seen[ic.deadline] = true
	}
	if len(seen) < 2 {
		t.Errorf("distinct deadlines: got %d; want them spread", len(seen))
	}
	if !p.reapAt.IsZero() && p.reapAt.After(start.Add(ttl)) {
		t.Errorf("reaper waits until now+%v; want at most %v", p.reapAt.Sub(start), ttl)
	}
}
