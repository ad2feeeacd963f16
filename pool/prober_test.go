package pool_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	. "github.com/warmport/warmport/pool"
)

// selfChecked is a Conn that checks itself (Prober), as a TLS connection or
// an SSH channel does.
type selfChecked struct {
	dead   atomic.Bool
	probes atomic.Int64
	closed atomic.Bool
}

func (c *selfChecked) Probe() error {
	c.probes.Add(1)
	if c.dead.Load() {
		return errors.New("dead")
	}
	return nil
}
func (c *selfChecked) Close() error { c.closed.Store(true); return nil }

// unchecked is a Conn with no way to be checked: neither Prober nor a socket.
type unchecked struct{ closed atomic.Bool }

func (c *unchecked) Close() error { c.closed.Store(true); return nil }

// warmPool returns a pool that keeps one connection warm, dialed by dial.
func warmPool[C Conn](t *testing.T, dial func() C) *Pool[C] {
	t.Helper()
	p, err := New(Config[C]{Warm: 1, Dial: func(context.Context) (C, error) { return dial(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waitFor(t, "the warm connection", func() bool { return p.Stats().Idle == 1 })
	return p
}

// A Prober is asked on borrow, and only it decides: a live one is handed
// out, a dead one closed and counted stale; Put never takes one back, since
// the pool cannot tell whether bytes wait on it.
func TestProberDecides(t *testing.T) {
	for _, dead := range []bool{false, true} {
		t.Run(map[bool]string{false: "alive", true: "dead"}[dead], func(t *testing.T) {
			var made []*selfChecked
			p := warmPool(t, func() *selfChecked {
				c := &selfChecked{}
				c.dead.Store(dead)
				made = append(made, c)
				return c
			})
			first := made[0]
			got, src, ok := p.TryGet()
			if first.probes.Load() == 0 {
				t.Fatal("TryGet handed out or discarded a Prober without asking it")
			}
			if ok != !dead || (ok && (got != first || src != Warm)) {
				t.Fatalf("TryGet: %p, %v, %v; want the warm one handed out: %v", got, src, ok, !dead)
			}
			if dead && (!first.closed.Load() || p.Stats().Stale == 0) {
				t.Fatalf("dead: closed %v, stats %+v; want closed and counted stale", first.closed.Load(), p.Stats())
			}
			if ok {
				if err := p.Put(got); !errors.Is(err, ErrUnchecked) || !got.closed.Load() {
					t.Fatalf("Put: %v, closed %v; want ErrUnchecked and closed", err, got.closed.Load())
				}
			}
		})
	}
}

// A Conn the pool cannot check is never taken back.
func TestPutUnchecked(t *testing.T) {
	p, err := New(Config[*unchecked]{Dial: func(context.Context) (*unchecked, error) { return nil, errors.New("unused") }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := &unchecked{}
	if err := p.Put(c); !errors.Is(err, ErrUnchecked) || !c.closed.Load() {
		t.Fatalf("Put: %v, closed %v; want ErrUnchecked and closed", err, c.closed.Load())
	}
}
