package pool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/warmport/warmport/pool"
)

// Rewarm after the path to the upstream came back: the idle connections
// that died with it are closed and counted stale, live ones stay, and the
// pool dials up to Warm again at once, even after a failed background dial
// (which otherwise waits for the next Get).
func TestRewarm(t *testing.T) {
	var mu sync.Mutex
	var made []*selfChecked
	var failing atomic.Bool
	p, err := New(Config[*selfChecked]{Warm: 2, Dial: func(context.Context) (*selfChecked, error) {
		if failing.Load() {
			return nil, errors.New("path down")
		}
		c := &selfChecked{}
		mu.Lock()
		made = append(made, c)
		mu.Unlock()
		return c, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, "two warm connections", func() bool { return p.Stats().Idle == 2 })
	// The path drops: both idle connections die; a borrow finds them dead
	// and its dial fails, which pauses refills.
	failing.Store(true)
	mu.Lock()
	made[0].dead.Store(true)
	made[1].dead.Store(true)
	mu.Unlock()
	if _, _, _, err := p.Get(context.Background()); err == nil {
		t.Fatal("Get: got a connection; want the dead ones discarded and the dial's failure")
	}
	mu.Lock()
	made = made[:0] // from here on: what Rewarm dials
	mu.Unlock()
	failing.Store(false)

	p.Rewarm()
	waitFor(t, "two new warm connections", func() bool { return p.Stats().Idle == 2 })
	mu.Lock()
	n := len(made)
	mu.Unlock()
	if n != 2 {
		t.Errorf("connections dialed after Rewarm: got %d; want 2", n)
	}
	if s := p.Stats(); s.Stale != 2 {
		t.Errorf("stale: got %d; want 2", s.Stale)
	}
	// Rewarm with live idle connections keeps them.
	p.Rewarm()
	if s := p.Stats(); s.Idle != 2 || s.Stale != 2 {
		t.Errorf("after a second Rewarm: idle %d, stale %d; want 2 and 2", s.Idle, s.Stale)
	}
}
