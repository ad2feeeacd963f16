package pool

import (
	"context"
	"errors"
	"testing"
)

// selfChecked is a Conn that checks itself (Prober), as a TLS connection or
// an SSH channel would through the forwarder's adapter.
type selfChecked struct {
	unread bool
	err    error
	closed bool
}

func (c *selfChecked) Probe() (bool, error) { return c.unread, c.err }
func (c *selfChecked) Close() error         { c.closed = true; return nil }

// unchecked is a Conn with no way to be checked: neither Prober nor a socket.
type unchecked struct{ closed bool }

func (c *unchecked) Close() error { c.closed = true; return nil }

func newTestPool[C Conn](t *testing.T) *Pool[C] {
	t.Helper()
	p, err := New(Config[C]{Dial: func(context.Context) (C, error) {
		var zero C
		return zero, errors.New("no dials in this test")
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Put and TryGet ask a Prober, and only it: a dead one is refused and
// closed, one holding bytes is refused (Put) or discarded (a Reused one on
// borrow), a quiet one is taken and handed out.
func TestProberDecides(t *testing.T) {
	dead := errors.New("dead")
	for _, tt := range []struct {
		name         string
		atPut, atGet selfChecked // what Probe says at Put, then at TryGet
		putErr       error
		handedOut    bool
	}{
		{"quiet", selfChecked{}, selfChecked{}, nil, true},
		{"dead at put", selfChecked{err: dead}, selfChecked{}, ErrDead, false},
		{"unread at put", selfChecked{unread: true}, selfChecked{}, ErrUnread, false},
		{"dead at borrow", selfChecked{}, selfChecked{err: dead}, nil, false},
		{"unread at borrow", selfChecked{}, selfChecked{unread: true}, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool[*selfChecked](t)
			c := &tt.atPut
			if err := p.Put(c); !errors.Is(err, tt.putErr) || (err == nil) != (tt.putErr == nil) {
				t.Fatalf("Put: %v; want %v", err, tt.putErr)
			}
			if tt.putErr != nil {
				if !c.closed {
					t.Fatal("a refused connection was not closed")
				}
				return
			}
			c.unread, c.err = tt.atGet.unread, tt.atGet.err
			got, src, ok := p.TryGet()
			if ok != tt.handedOut {
				t.Fatalf("TryGet: ok %v; want %v", ok, tt.handedOut)
			}
			if ok && (got != c || src != Reused) {
				t.Fatalf("TryGet: %p from %v; want %p, reused", got, src, c)
			}
			if !ok && (!c.closed || p.Stats().Stale != 1) {
				t.Fatalf("discarded: closed %v, stats %+v; want closed and counted stale", c.closed, p.Stats())
			}
		})
	}
}

// A Conn the pool cannot check is never taken back.
func TestPutUnchecked(t *testing.T) {
	p := newTestPool[*unchecked](t)
	c := &unchecked{}
	if err := p.Put(c); !errors.Is(err, ErrUnchecked) || !c.closed {
		t.Fatalf("Put: %v, closed %v; want ErrUnchecked and closed", err, c.closed)
	}
}
