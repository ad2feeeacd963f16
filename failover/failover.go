// Package failover dials the first healthy one of several upstream
// candidates (REMOTE as "db1:5432,db2:5432"), in order. A candidate whose
// dial failed is skipped for a back-off, 1 s doubling to 30 s with a little
// jitter, while another one works, and retried when it ends. The back-off
// only orders the candidates, it never refuses a client: when every
// candidate that is not backing off failed, or none is left, the ones
// backing off are tried too, in order, before the dial fails.
package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Back-off bounds for a candidate whose dial failed.
const (
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// Split reads a REMOTE list: candidates separated by commas, each left for
// the caller to parse as one REMOTE. A Unix path with a comma in it cannot
// be a candidate.
func Split(remote string) ([]string, error) {
	parts := strings.Split(remote, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("REMOTE %q has an empty candidate: give HOST:PORT[,HOST:PORT...], e.g. db1:5432,db2:5432", remote)
		}
	}
	return parts, nil
}

// Set is the candidates of one REMOTE and what their last dials said. It
// is safe for concurrent use; C is the connection type a dial returns.
type Set[C any] struct {
	// OnDown and OnUp, if set (before the first Dial), are called when a
	// candidate goes down and when it comes back, after the line is
	// printed, outside the Set's lock (OnUp may flush a pool of
	// connections to a worse candidate).
	OnDown func(addr string, err error, retryIn time.Duration)
	OnUp   func(addr string)

	logf      func(format string, args ...any)
	base, max time.Duration
	now       func() time.Time // test doubles
	jitter    func() float64   // in [0, 1)
	mu        sync.Mutex
	cands     []candidate
}

type candidate struct {
	addr    string
	down    bool
	fails   int       // failed dials in a row, each one a back-off step
	retryAt time.Time // while down: skipped until then
	gen     uint64    // bumped by every change of down; a dial's result counts only for the gen it started in
	probing bool      // a dial is retrying it after its back-off; the others still skip it
}

// New returns a Set of addrs (at least one), which prints its "down" and
// "back" lines through logf.
func New[C any](addrs []string, logf func(format string, args ...any)) *Set[C] {
	s := &Set[C]{logf: logf, base: DefaultBackoff, max: DefaultMaxBackoff, now: time.Now, jitter: rand.Float64}
	for _, a := range addrs {
		s.cands = append(s.cands, candidate{addr: a})
	}
	return s
}

// Addrs returns the candidates in order.
func (s *Set[C]) Addrs() []string {
	out := make([]string, len(s.cands))
	for i, c := range s.cands {
		out[i] = c.addr
	}
	return out
}

// attempt is one candidate a Dial will try, with the state it saw.
type attempt struct {
	i     int
	gen   uint64
	down  bool // as plan saw it
	probe bool
}

// Dial calls dialOne for the first healthy candidate, then the next ones
// while they fail, then the ones backing off, and returns the first
// connection with the candidate that gave it. All failed: the first
// candidate's error (each dialOne applies its own timeout). A single
// candidate is dialed directly: no lines, no back-off, as a plain REMOTE.
func (s *Set[C]) Dial(ctx context.Context, dialOne func(ctx context.Context, addr string) (C, error)) (C, string, error) {
	if len(s.cands) == 1 {
		c, err := dialOne(ctx, s.cands[0].addr)
		return c, s.cands[0].addr, err
	}
	var hb, bb [8]attempt // no allocation for up to 8 candidates
	healthy, backingOff := s.plan(hb[:0], bb[:0])
	var first error
	for _, list := range [][]attempt{healthy, backingOff} {
		for i, a := range list {
			addr := s.cands[a.i].addr
			c, err := dialOne(ctx, addr)
			if err == nil {
				s.succeeded(a)
				s.unclaim(list[i+1:])
				return c, addr, nil
			}
			if ctx.Err() != nil { // the caller gave up: that says nothing about addr
				s.unclaim(list[i:])
				var zero C
				return zero, addr, err
			}
			s.failed(a, err)
			if first == nil {
				first = err
			}
		}
	}
	var zero C
	if first == nil {
		first = errors.New("failover: no candidate")
	}
	return zero, "", first
}

// plan splits the candidates, in order, into the ones to try first (up,
// or at the end of their back-off and not yet being retried by another
// dial: this one claims the retry) and the ones backing off.
func (s *Set[C]) plan(healthy, backingOff []attempt) ([]attempt, []attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var now time.Time // read only when a candidate is down
	for i := range s.cands {
		c := &s.cands[i]
		a := attempt{i: i, gen: c.gen, down: c.down}
		if c.down && now.IsZero() {
			now = s.now()
		}
		switch {
		case !c.down:
			healthy = append(healthy, a)
		case !c.probing && !now.Before(c.retryAt):
			c.probing, a.probe = true, true
			healthy = append(healthy, a)
		default:
			backingOff = append(backingOff, a)
		}
	}
	return healthy, backingOff
}

func (s *Set[C]) succeeded(a attempt) {
	if !a.down && !a.probe { // up when the dial started: nothing to change (and if it went down since, this older dial says nothing new)
		return
	}
	s.mu.Lock()
	c := &s.cands[a.i]
	if a.probe {
		c.probing = false
	}
	// A dial that started before the candidate went down says nothing new.
	back := c.down && c.gen == a.gen
	if back {
		c.down, c.fails = false, 0
		c.gen++
	}
	addr := c.addr
	s.mu.Unlock()
	if back {
		s.logf("warmport: upstream %s is back", addr)
		if s.OnUp != nil {
			s.OnUp(addr)
		}
	}
}

func (s *Set[C]) failed(a attempt, err error) {
	s.mu.Lock()
	c := &s.cands[a.i]
	if a.probe {
		c.probing = false
	}
	if c.gen != a.gen { // another dial already counted this failure
		s.mu.Unlock()
		return
	}
	c.gen++
	c.fails++
	d := s.max
	if c.fails <= 16 {
		d = min(s.base<<(c.fails-1), s.max)
	}
	d = time.Duration(float64(d) * (0.9 + 0.2*s.jitter())) // ±10%: candidates that fell together are not retried in step
	c.retryAt = s.now().Add(d)
	wentDown := !c.down
	c.down = true
	addr := c.addr
	s.mu.Unlock()
	if wentDown {
		s.logf("warmport: upstream %s is down (%v); trying the next candidate, retrying it in %s", addr, err, d.Round(100*time.Millisecond))
		if s.OnDown != nil {
			s.OnDown(addr, err, d)
		}
	}
}

// unclaim gives back the retries a Dial claimed but did not make, so the
// next Dial makes them.
func (s *Set[C]) unclaim(untried []attempt) {
	for _, a := range untried {
		if a.probe {
			s.mu.Lock()
			s.cands[a.i].probing = false
			s.mu.Unlock()
		}
	}
}
