package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	. "github.com/warmport/warmport/pool"
)

// TestUnusedCloseIsFIN: a pre-dialed connection that a server greeted and
// that the pool lets go unused (expired by the TTL, evicted by the LRU
// bound, or closed by Close) ends with a FIN, so the server reads EOF and
// logs no "Connection reset by peer".
func TestUnusedCloseIsFIN(t *testing.T) {
	for _, tc := range []struct {
		name string
		let  func(p *Pool[*net.TCPConn]) // lets the idle connection go
		cfg  func(*Config[*net.TCPConn]) // tweaks the pool
	}{
		{"expired", func(*Pool[*net.TCPConn]) {}, func(c *Config[*net.TCPConn]) { c.TTL = 50 * time.Millisecond }},
		{"closed", func(p *Pool[*net.TCPConn]) { p.Close() }, func(*Config[*net.TCPConn]) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ends := make(chan error, 4)
			u := startUpstream(t, func(c net.Conn) {
				if _, err := io.WriteString(c, greeting); err != nil {
					ends <- err
					return
				}
				_, err := io.Copy(io.Discard, c) // nil on EOF
				ends <- err
			})
			cfg := Config[*net.TCPConn]{Dial: u.dial, Warm: 1, TTL: time.Minute}
			tc.cfg(&cfg)
			p := newPool(t, cfg)
			waitIdle(t, p, 1)
			u.waitWithBytes(t, 1)
			tc.let(p)
			select {
			case err := <-ends:
				if err != nil {
					t.Errorf("the server's read ended with %v; want EOF (a FIN, not a reset)", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the server never saw the pooled connection end")
			}
		})
	}
}

// TestUnusedCloseWaitsForLateGreeting: a server that greets only after the
// pool let its connection go (sshd under load greets tens of milliseconds
// after accepting) is not answered with a reset: the pool's side is shut
// down for writing but still reads, until the server's own FIN. A socket
// closed outright answers the late greeting with a reset, which the server's
// next writes see (its reads cannot: our FIN came first).
func TestUnusedCloseWaitsForLateGreeting(t *testing.T) {
	for _, tc := range []struct {
		name string
		let  func(p *Pool[*net.TCPConn])
		ttl  time.Duration
	}{
		{"expired", func(*Pool[*net.TCPConn]) {}, 50 * time.Millisecond},
		{"closed", func(p *Pool[*net.TCPConn]) { go p.Close() }, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ends := make(chan error, 4)
			u := startUpstream(t, func(c net.Conn) {
				defer c.Close()
				if _, err := c.Read(make([]byte, 1)); err != io.EOF { // the pool's FIN, before any greeting
					ends <- fmt.Errorf("first read: %v; want EOF", err)
					return
				}
				// A reset comes back within a loopback round trip of the first
				// write; a few more writes, a few ms apart, are sure to meet it.
				for i := range 5 {
					if _, err := io.WriteString(c, greeting); err != nil {
						ends <- fmt.Errorf("write %d after the pool's FIN: %w", i, err)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				ends <- nil
			})
			p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 1, TTL: tc.ttl})
			waitIdle(t, p, 1)
			tc.let(p)
			select {
			case err := <-ends:
				if err != nil {
					t.Errorf("the server: %v; want no reset", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the server never saw the pooled connection end")
			}
		})
	}
}

// TestOnDial: every background dial's result reaches OnDial, failures with
// their error, and dials canceled by Close are not reported.
func TestOnDial(t *testing.T) {
	refused := errors.New("connect: connection refused")
	results := make(chan error, 16)
	fail := true
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Warm: 1, OnDial: func(err error) { results <- err },
		Dial: func(ctx context.Context) (*net.TCPConn, error) {
			if fail {
				return nil, refused
			}
			return u.dial(ctx)
		}})
	if got := next(t, results); !errors.Is(got, refused) {
		t.Fatalf("first OnDial: got %v; want %v", got, refused)
	}
	fail = false // the pool dials again only after a Get: no race with the dialer
	c, _, _, err := p.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	c.Close()
	if got := next(t, results); got != nil {
		t.Errorf("OnDial after a successful refill: got %v; want nil", got)
	}

	blocked := make(chan struct{})
	q := newPool(t, Config[*net.TCPConn]{Warm: 1, OnDial: func(err error) { results <- err },
		Dial: func(ctx context.Context) (*net.TCPConn, error) {
			close(blocked)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	<-blocked
	q.Close()
	select {
	case err := <-results:
		t.Errorf("OnDial after Close canceled the dial: got %v; want no call", err)
	default:
	}
}

func next(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("OnDial was not called")
		return nil
	}
}
