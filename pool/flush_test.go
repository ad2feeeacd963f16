package pool_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	. "github.com/warmport/warmport/pool"
)

// Flush closes the idle connections to the old upstream and warms the pool
// again through the dial function, which now reaches the new one.
func TestFlushRewarmsThroughTheDial(t *testing.T) {
	oldUp := startUpstream(t, echo)
	newUp := startUpstream(t, echo)
	var target atomic.Pointer[upstream]
	target.Store(oldUp)
	dial := func(ctx context.Context) (*net.TCPConn, error) { return target.Load().dial(ctx) }
	p := newPool(t, WithDial(Options{Warm: 2, Max: 4}, dial))
	waitIdle(t, p, 2)

	target.Store(newUp)
	p.Flush()
	waitFor(t, "the old upstream's connections closed", func() bool { return oldUp.Open() == 0 })
	waitFor(t, "two warm connections to the new upstream", func() bool { return newUp.Accepted() == 2 && p.Stats().Idle == 2 })
	for i := 0; i < 2; i++ {
		c := mustGet(t, p, Warm)
		mustRoundTrip(t, c)
		if got, want := c.RemoteAddr().String(), newUp.Addr(); got != want {
			t.Errorf("borrow %d: got a connection to %s; want %s", i, got, want)
		}
		c.Close()
	}
	if got := oldUp.Accepted(); got != 2 {
		t.Errorf("old upstream accepted %d; want 2 (the first warm ones only)", got)
	}
}

// Flush after Close does nothing: no dial, no panic.
func TestFlushAfterClose(t *testing.T) {
	up := startUpstream(t, echo)
	p := newPool(t, WithDial(Options{Warm: 1}, up.dial))
	waitIdle(t, p, 1)
	p.Close()
	p.Flush()
	if got := p.Stats().Dials; got != 1 {
		t.Errorf("dials after Close and Flush: got %d; want 1", got)
	}
}
