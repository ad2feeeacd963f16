package pool_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/warmport/warmport/pool"
)

func TestSourceString(t *testing.T) {
	for _, tt := range []struct {
		src  Source
		want string
	}{
		{Cold, "cold"},
		{Warm, "warm"},
		{Reused, "reused"},
		{Source(7), "Source(7)"},
	} {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("Source(%d).String() got %q; want %q", tt.src, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dial := func(context.Context) (*net.TCPConn, error) { return nil, errors.New("unused") }
	for _, tt := range []struct {
		name string
		cfg  Config[*net.TCPConn]
		want string // "" = no error
	}{
		{"zero but Dial", Config[*net.TCPConn]{Dial: dial}, ""},
		{"no Dial", Config[*net.TCPConn]{Warm: 1}, "Dial is nil"},
		{"negative Warm", Config[*net.TCPConn]{Dial: dial, Warm: -1}, "negative Warm"},
		{"negative Max", Config[*net.TCPConn]{Dial: dial, Max: -1}, "negative Max"},
		{"negative TTL", Config[*net.TCPConn]{Dial: dial, TTL: -time.Second}, "negative TTL"},
		{"Warm over Max", Config[*net.TCPConn]{Dial: dial, Warm: 4, Max: 3}, "larger than Max"},
		{"Warm over DefaultMax", Config[*net.TCPConn]{Dial: dial, Warm: DefaultMax + 1}, "larger than Max"},
		{"Warm equals Max", Config[*net.TCPConn]{Dial: dial, Warm: 3, Max: 3}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if err == nil {
				p.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: got %v; want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: got %v; want an error containing %q", err, tt.want)
			case err != nil && !strings.HasPrefix(err.Error(), "pool: "):
				t.Fatalf("New: got %q; want the prefix \"pool: \"", err)
			}
		})
	}
}

func TestWarmFill(t *testing.T) {
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 3})
	waitFor(t, "3 connections accepted without a Get", func() bool { return u.Accepted() == 3 })
	waitIdle(t, p, 3)

	c := mustGet(t, p, Warm)
	defer c.Close()
	mustRoundTrip(t, c)
	if got := p.Stats().Hits; got != 1 {
		t.Fatalf("Hits: got %d; want 1", got)
	}
	// The refill brings the upstream back to 3 idle connections plus ours.
	waitIdle(t, p, 3)
	waitFor(t, "4 open upstream connections", func() bool { return u.Open() == 4 })
	if s := p.Stats(); s.Dials != 4 || s.Misses != 0 {
		t.Fatalf("Dials, Misses: got %d, %d; want 4, 0", s.Dials, s.Misses)
	}
}

func TestGetDropsStaleIdle(t *testing.T) {
	for _, tt := range []struct {
		name string
		kill func(t *testing.T, u *upstream)
	}{
		{"upstream closes its connections", func(_ *testing.T, u *upstream) { u.CloseConns() }},
		{"upstream restarted on the same port", func(t *testing.T, u *upstream) { u.Close(); u.Reopen(t) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := startUpstream(t, echo)
			p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 2})
			waitIdle(t, p, 2)
			waitFor(t, "the upstream to accept both", func() bool { return u.Accepted() == 2 })
			tt.kill(t, u)
			u.waitDead(t, 2)
			for i := range 4 {
				c, _, _, err := p.Get(context.Background())
				if err != nil {
					t.Fatalf("Get %d: %v", i, err)
				}
				if err := roundTrip(c); err != nil {
					t.Fatalf("Get %d: round trip: %v", i, err)
				}
				c.Close()
			}
			if got := p.Stats().Stale; got != 2 {
				t.Fatalf("Stale: got %d; want 2", got)
			}
		})
	}
}

func TestUpstreamClosesIdleConns(t *testing.T) {
	u := startUpstream(t, closeIdle(200*time.Millisecond))
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 2})
	for i := range 3 {
		// Each round borrows after the server dropped the idle ones.
		waitIdle(t, p, 2)
		u.waitDead(t, 2)
		c, src, _, err := p.Get(context.Background())
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if src != Cold {
			t.Errorf("Get %d: source got %v; want %v", i, src, Cold)
		}
		if err := roundTrip(c); err != nil {
			t.Fatalf("Get %d: round trip: %v", i, err)
		}
		c.Close()
	}
	if got := p.Stats().Stale; got != 6 {
		t.Fatalf("Stale: got %d; want 6", got)
	}
}

func TestGreetingFirstUpstream(t *testing.T) {
	t.Run("greeting stays for the client", func(t *testing.T) {
		u := startUpstream(t, greet)
		p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 1})
		waitIdle(t, p, 1)
		u.waitWithBytes(t, 1)
		c := mustGet(t, p, Warm)
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		b := make([]byte, len(greeting))
		if _, err := io.ReadFull(c, b); err != nil || string(b) != greeting {
			t.Fatalf("greeting: got %q, %v; want %q", b, err, greeting)
		}
		mustRoundTrip(t, c) // the next byte is our echo: the greeting came once
		if got := p.Stats().Stale; got != 0 {
			t.Fatalf("Stale: got %d; want 0", got)
		}
	})
	t.Run("greeting then close is stale", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("needs TCP_INFO to see a FIN behind the greeting")
		}
		u := startUpstream(t, greetAndClose)
		p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Warm: 1})
		waitIdle(t, p, 1)
		u.waitDead(t, 1)
		c := mustGet(t, p, Cold)
		c.Close()
		if s := p.Stats(); s.Stale != 1 || s.Hits != 0 || s.Misses != 1 {
			t.Fatalf("Stale, Hits, Misses: got %d, %d, %d; want 1, 0, 1", s.Stale, s.Hits, s.Misses)
		}
	})
}

func TestGetDialError(t *testing.T) {
	boom := errors.New("boom")
	p := newPool(t, Config[*net.TCPConn]{Dial: func(context.Context) (*net.TCPConn, error) { return nil, boom }})
	c, src, _, err := p.Get(context.Background())
	if c != nil || src != Cold || !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "dial upstream: ") {
		t.Fatalf("Get: got %v, %v, %v; want nil, cold, \"dial upstream: boom\"", c, src, err)
	}
	if _, _, err := p.Dial(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Dial: got %v; want %v", err, boom)
	}
	if s := p.Stats(); s.Dials != 2 || s.Misses != 1 {
		t.Fatalf("Dials, Misses: got %d, %d; want 2, 1", s.Dials, s.Misses)
	}
}

func TestDialIsNeverPooled(t *testing.T) {
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial})
	c, d, err := p.Dial(context.Background())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	mustRoundTrip(t, c)
	if d <= 0 {
		t.Errorf("Dial: duration got %v; want > 0", d)
	}
	if s := p.Stats(); s.Dials != 1 || s.Idle != 0 || s.Hits+s.Misses != 0 {
		t.Fatalf("Dials, Idle, Hits+Misses: got %d, %d, %d; want 1, 0, 0", s.Dials, s.Idle, s.Hits+s.Misses)
	}
}

func TestPut(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handle  func(net.Conn)
		linux   bool                                                                   // the check needs TCP_INFO
		prepare func(t *testing.T, u *upstream, p *Pool[*net.TCPConn], c *net.TCPConn) // before Put
		want    error
	}{
		{name: "clean", handle: echo},
		{
			name: "read deadline in the past", handle: echo,
			prepare: func(t *testing.T, _ *upstream, _ *Pool[*net.TCPConn], c *net.TCPConn) {
				c.SetReadDeadline(time.Now().Add(-time.Second))
			},
		},
		{
			name: "unread bytes", handle: greet, want: ErrUnread,
			prepare: func(t *testing.T, _ *upstream, _ *Pool[*net.TCPConn], c *net.TCPConn) {
				waitFor(t, "the greeting", func() bool { s, _ := kernelState(t, c); return s.queued > 0 })
			},
		},
		{
			name: "peer closed", handle: closeAtOnce, want: ErrDead,
			prepare: func(t *testing.T, u *upstream, _ *Pool[*net.TCPConn], c *net.TCPConn) {
				waitClosed(t, u, c)
				waitFor(t, "the FIN", func() bool { s, _ := kernelState(t, c); return s.dead })
			},
		},
		{
			name: "write side shut down", handle: echo, want: ErrDead, linux: true,
			prepare: func(t *testing.T, _ *upstream, _ *Pool[*net.TCPConn], c *net.TCPConn) { c.CloseWrite() },
		},
		{
			name: "pool closed", handle: echo, want: ErrClosed,
			prepare: func(t *testing.T, _ *upstream, p *Pool[*net.TCPConn], _ *net.TCPConn) { p.Close() },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.linux && runtime.GOOS != "linux" {
				t.Skip("needs TCP_INFO")
			}
			u := startUpstream(t, tt.handle)
			p := newPool(t, Config[*net.TCPConn]{Dial: u.dial})
			c := mustGet(t, p, Cold)
			if tt.prepare != nil {
				tt.prepare(t, u, p, c)
			}
			err := p.Put(c)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Put: got %v; want %v", err, tt.want)
			}
			if tt.want != nil {
				if _, err := c.Write([]byte{'x'}); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Write after a refused Put: got %v; want %v", err, net.ErrClosed)
				}
				waitClosed(t, u, c)
				wantStale := uint64(0)
				if errors.Is(tt.want, ErrDead) {
					wantStale = 1
				}
				if s := p.Stats(); s.Reused != 0 || s.Idle != 0 || s.Stale != wantStale {
					t.Fatalf("Reused, Idle, Stale: got %d, %d, %d; want 0, 0, %d", s.Reused, s.Idle, s.Stale, wantStale)
				}
				return
			}
			if s := p.Stats(); s.Reused != 1 || s.Idle != 1 {
				t.Fatalf("Reused, Idle: got %d, %d; want 1, 1", s.Reused, s.Idle)
			}
			c2 := mustGet(t, p, Reused)
			defer c2.Close()
			if c2 != c {
				t.Fatalf("Get after Put: got %v; want the connection put back, %v", c2.LocalAddr(), c.LocalAddr())
			}
			mustRoundTrip(t, c2)
		})
	}
}

func TestLRUBound(t *testing.T) {
	u := startUpstream(t, echo)
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial, Max: 3})
	conns := make([]*net.TCPConn, 5)
	for i := range conns {
		conns[i] = mustGet(t, p, Cold)
	}
	for i, c := range conns {
		if err := p.Put(c); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	// The two least recently used, put first, were evicted and closed.
	waitClosed(t, u, conns[0])
	waitClosed(t, u, conns[1])
	waitFor(t, "3 open upstream connections", func() bool { return u.Open() == 3 })
	if s := p.Stats(); s.Evicted != 2 || s.Reused != 5 || s.Idle != 3 {
		t.Fatalf("Evicted, Reused, Idle: got %d, %d, %d; want 2, 5, 3", s.Evicted, s.Reused, s.Idle)
	}
	// Newest first.
	for _, want := range []*net.TCPConn{conns[4], conns[3], conns[2]} {
		c := mustGet(t, p, Reused)
		if c != want {
			t.Fatalf("Get: got %v; want %v", c.LocalAddr(), want.LocalAddr())
		}
		mustRoundTrip(t, c)
		c.Close()
	}
	mustGet(t, p, Cold).Close()
}

func TestGetDropsReusedWithLateBytes(t *testing.T) {
	late := make(chan struct{})
	u := startUpstream(t, func(c net.Conn) {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		c.Write(b[:])
		select {
		case <-late:
		case <-time.After(waitTimeout): // the test failed early
			return
		}
		io.WriteString(c, "late")
		echo(c)
	})
	p := newPool(t, Config[*net.TCPConn]{Dial: u.dial})
	c := mustGet(t, p, Cold)
	mustRoundTrip(t, c)
	if err := p.Put(c); err != nil {
		t.Fatalf("Put: %v", err)
	}
	close(late)
	u.waitWithBytes(t, 1)
	c2 := mustGet(t, p, Cold)
	c2.Close()
	waitClosed(t, u, c)
	if s := p.Stats(); s.Stale != 1 || s.Hits != 0 {
		t.Fatalf("Stale, Hits: got %d, %d; want 1, 0", s.Stale, s.Hits)
	}
}
