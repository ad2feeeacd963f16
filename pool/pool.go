package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Source tells where a connection handed out by Get came from.
type Source uint8

const (
	Cold   Source = iota // dialed for this borrow (a miss)
	Warm                 // pre-dialed by the pool
	Reused               // recycled from an earlier client via Put
)

// String returns "cold", "warm" or "reused".
func (s Source) String() string {
	switch s {
	case Cold:
		return "cold"
	case Warm:
		return "warm"
	case Reused:
		return "reused"
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

const (
	// DefaultMax is the LRU bound on idle connections when Config.Max is 0.
	DefaultMax = 8
	// DefaultTTL is the idle lifetime when Config.TTL is 0. It stays below
	// MySQL's connect_timeout (10s) so the pool, not the server, closes.
	DefaultTTL = 8 * time.Second
)

// Reasons Put refuses a connection. Put wraps ErrDead with the probe's error;
// test with errors.Is.
var (
	ErrClosed    = errors.New("pool: closed")
	ErrDead      = errors.New("pool: connection dead")
	ErrUnread    = errors.New("pool: unread bytes on connection")
	ErrUnchecked = errors.New("pool: cannot check connections on this platform")
)

// Conn is what a pool holds: any connection that can be closed. Its zero
// value (nil) means no connection. How the pool checks one is up to what
// else it has, found by type assertion, so a caller stubs nothing:
//
//   - Prober: it checks itself (a TLS connection, an SSH channel, whose
//     life a peek at a socket cannot tell);
//   - else SyscallConn (syscall.Conn): a socket, peeked at without waiting
//     (see probe), its deadlines cleared first if it has SetDeadline;
//   - else nothing: handed out unchecked (the forwarder's replay covers a
//     dead one) and never taken back by Put (ErrUnchecked).
type Conn interface {
	comparable
	Close() error
}

// Prober is a Conn that checks itself, without waiting: an error means dead
// (discarded, counted stale); nil means it may be handed out, with any
// greeting it holds kept for the client. Whether bytes are unread stays
// unknown to the pool, so Put never takes a Prober back (ErrUnchecked).
type Prober interface {
	Probe() error
}

var errNoConn = errors.New("pool: Dial returned neither a connection nor an error")

// Options are a pool's settings, without the dialer: what a user chooses.
type Options struct {
	Warm int           // see Config.Warm
	Max  int           // see Config.Max
	TTL  time.Duration // see Config.TTL

	OnDial func(error) // see Config.OnDial
}

// WithDial returns the Config of a pool with o's settings that dials with dial.
func WithDial[C Conn](o Options, dial func(ctx context.Context) (C, error)) Config[C] {
	return Config[C]{Dial: dial, Warm: o.Warm, Max: o.Max, TTL: o.TTL, OnDial: o.OnDial}
}

// Config configures a Pool. Only Dial is required.
type Config[C Conn] struct {
	// Dial opens one upstream connection. The caller puts its dial timeout in
	// it; it must return when ctx is done (Close cancels background dials and
	// waits for them).
	Dial func(ctx context.Context) (C, error)

	// Warm is the number of idle connections kept ready. Zero means no dialing
	// ahead at all: Get just dials, Put may still recycle.
	Warm int

	// Max bounds the idle connections (LRU). Zero means DefaultMax. New fails
	// if Warm is larger than Max.
	Max int

	// TTL is how long a connection may stay idle. An idle connection older
	// than this is closed and never handed out. Zero means DefaultTTL.
	TTL time.Duration

	// OnDial, if set, is told the result of every background dial (nil on
	// success), so a caller can report an upstream that cannot be reached
	// before any client comes. It is called outside the pool's lock, from
	// the dialing goroutine, and must not block. A dial canceled by Close is
	// not reported.
	OnDial func(error)

	// Now, if set, is the pool's clock, as crypto/tls's Config.Time is a
	// TLS config's: what idle connections' deadlines and the last Get are
	// read from, so that a caller that simulates time (a test of code that
	// holds a pool, a replay) decides when connections expire. The pool
	// then starts no reaper, since a timer would keep to the system's time:
	// expired connections are skipped (and closed) on borrow, and closed
	// when the caller calls Reap. Nil means time.Now, with a reaper that
	// closes each connection when its deadline comes. Dial durations are
	// always measured on the system's clock.
	Now func() time.Time
}

func (c *Config[C]) max() int {
	if c.Max > 0 {
		return c.Max
	}
	return DefaultMax
}

func (c *Config[C]) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return DefaultTTL
}

// Stats are the pool's counters since New, and its idle count right now.
type Stats struct {
	Hits    uint64 `json:"hits"`    // borrows served from the pool
	Misses  uint64 `json:"misses"`  // borrows that had to dial (Cold)
	Stale   uint64 `json:"stale"`   // idle connections found dead by the probe, by Put's check, or at first use (Replace), and discarded
	Evicted uint64 `json:"evicted"` // idle connections closed because the LRU bound was hit
	Expired uint64 `json:"expired"` // idle connections closed because they outlived TTL
	Reused  uint64 `json:"reused"`  // connections accepted back by Put
	Dials   uint64 `json:"dials"`   // every upstream dial attempt the pool made (pre-dial, refill, miss, Dial)
	Idle    int    `json:"idle"`    // idle connections held right now
}

// Pool is a set of idle upstream connections. It is safe for concurrent use.
type Pool[C Conn] struct {
	dial func(ctx context.Context) (C, error)
	warm int
	ttl  time.Duration

	onDial func(error)      // Config.OnDial
	now    func() time.Time // Config.Now, or time.Now

	// ctx, cancel and wg belong to the goroutines the pool starts (the reaper
	// and background dials); Close cancels and waits.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // tells the reaper a deadline earlier than reapAt arrived; nil without a reaper (Config.Now)

	mu      sync.Mutex
	idle    *simplelru.LRU[uint64, *idleConn[C]] // newest at the front
	nextID  uint64
	dialing int           // background dials in flight
	waiting int           // background dialers waiting for work (see waitWork)
	work    chan struct{} // hands a waiting dialer a dial; room for Warm
	failed  bool          // a background dial failed: no refill until the next Get
	closed  bool          // Close was called
	lastGet time.Time     // last Get; zero before the first one
	reapAt  time.Time     // what the reaper's timer waits for; zero if nothing
	doomed  []C           // to close once mu is released (see unlock)

	linger lingerSet // connections let go, waiting for their server's FIN (see letGo)

	hits, misses, stale, evicted, expired, reused, dials atomic.Uint64
}

// New checks cfg and returns a Pool that starts dialing cfg.Warm connections
// in the background at once.
func New[C Conn](cfg Config[C]) (*Pool[C], error) {
	switch {
	case cfg.Dial == nil:
		return nil, errors.New("pool: Config.Dial is nil")
	case cfg.Warm < 0:
		return nil, fmt.Errorf("pool: negative Warm %d", cfg.Warm)
	case cfg.Max < 0:
		return nil, fmt.Errorf("pool: negative Max %d", cfg.Max)
	case cfg.TTL < 0:
		return nil, fmt.Errorf("pool: negative TTL %v", cfg.TTL)
	case cfg.Warm > cfg.max():
		return nil, fmt.Errorf("pool: Warm %d is larger than Max %d", cfg.Warm, cfg.max())
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[C]{
		dial:   cfg.Dial,
		onDial: cfg.OnDial,
		warm:   cfg.Warm,
		ttl:    cfg.ttl(),
		ctx:    ctx,
		cancel: cancel,
		now:    cfg.Now,
		work:   make(chan struct{}, cfg.Warm),
	}
	idle, err := simplelru.NewLRU(cfg.max(), p.evictLocked)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("pool: %w", err)
	}
	p.idle = idle
	if p.now == nil {
		p.now = time.Now
		p.wake = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.reaper()
	}
	p.mu.Lock()
	p.refillLocked()
	p.mu.Unlock()
	return p, nil
}

// Get borrows a connection: the newest idle one that passes the liveness
// probe (a Warm one may hold a server greeting, left for the client; a Reused
// one must be quiet), or else a fresh one dialed with ctx (Cold; dial is how
// long that took, 0 for Warm and Reused). A failed dial is returned, wrapped,
// never retried. Get never waits for a background dial, and after Close it
// still dials. ctx is used only for dialing.
func (p *Pool[C]) Get(ctx context.Context) (c C, src Source, dial time.Duration, err error) {
	var zero C
	if c, src, ok := p.TryGet(); ok {
		return c, src, 0, nil
	}
	p.misses.Add(1)
	c, dial, err = p.dialOnce(ctx)
	if err != nil {
		// The upstream may be down: leave it alone until the next Get.
		p.mu.Lock()
		p.failed = true
		p.mu.Unlock()
		return zero, Cold, dial, fmt.Errorf("dial upstream: %w", err)
	}
	p.refill()
	return c, Cold, dial, nil
}

// TryGet borrows the newest idle connection that passes the liveness probe,
// as Get does, but never dials: ok is false when none is idle, and that
// counts as neither a hit nor a miss.
func (p *Pool[C]) TryGet() (c C, src Source, ok bool) {
	for {
		ic := p.take(p.now())
		if ic == nil {
			return c, Cold, false
		}
		h, perr := check(ic.c, false)
		if perr == nil && h == pending && ic.src == Reused {
			// Put took it quiet: these bytes answer nobody (a late
			// response, a server's goodbye) and must not reach a client.
			perr = ErrUnread
		}
		if perr != nil {
			ic.c.Close()
			p.stale.Add(1)
			continue
		}
		p.hits.Add(1)
		p.refill()
		return ic.c, ic.src, true
	}
}

// Dial dials one fresh connection with ctx, bypassing the idle set. It counts
// in Stats.Dials but neither as a hit nor a miss, and the connection is not
// the pool's (Put may still take it back).
func (p *Pool[C]) Dial(ctx context.Context) (c C, dial time.Duration, err error) {
	var zero C
	c, dial, err = p.dialOnce(ctx)
	if err != nil {
		return zero, dial, fmt.Errorf("dial upstream: %w", err)
	}
	return c, dial, nil
}

// Replace dials a fresh connection, as Dial does, in place of a borrowed
// one that turned out dead after the probe passed it (the caller closes
// that one): the borrow counts as stale and a miss, no longer as a hit, so
// Hits stays the number of borrows served from the pool.
func (p *Pool[C]) Replace(ctx context.Context) (c C, dial time.Duration, err error) {
	p.hits.Add(^uint64(0))
	p.stale.Add(1)
	p.misses.Add(1)
	return p.Dial(ctx)
}

// Put offers c back to the pool for the next client. It clears c's deadlines
// and takes c only if it is alive and has no unread bytes; then it returns
// nil. Otherwise c is closed and the error says why: ErrDead (wrapping the
// probe's error), ErrUnread, ErrClosed after Close, or ErrUnchecked where the
// platform offers no way to check. Over the Max bound, the least recently
// used idle connection is closed.
//
// The caller must not use c after Put, and must not Put a connection it has
// called CloseWrite on or that another goroutine still reads.
func (p *Pool[C]) Put(c C) error {
	var zero C
	if c == zero {
		return ErrDead
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		c.Close()
		return ErrClosed
	}
	h, err := check(c, true)
	switch {
	case err != nil:
		c.Close()
		p.stale.Add(1)
		return fmt.Errorf("%w: %w", ErrDead, err)
	case h == pending:
		c.Close()
		return ErrUnread
	case h == unknown:
		c.Close()
		return ErrUnchecked
	}
	p.mu.Lock()
	if p.closed { // Close came during the probe
		p.mu.Unlock()
		c.Close()
		return ErrClosed
	}
	p.addLocked(c, Reused, p.now())
	p.reused.Add(1)
	p.unlock()
	return nil
}

// Stats returns the counters. It is cheap enough to call every second.
func (p *Pool[C]) Stats() Stats {
	p.mu.Lock()
	idle := p.idle.Len()
	p.mu.Unlock()
	return Stats{
		Hits:    p.hits.Load(),
		Misses:  p.misses.Load(),
		Stale:   p.stale.Load(),
		Evicted: p.evicted.Load(),
		Expired: p.expired.Load(),
		Reused:  p.reused.Load(),
		Dials:   p.dials.Load(),
		Idle:    idle,
	}
}

// Close closes the idle connections, cancels background dials and waits for
// every goroutine the pool started, and for the connections it let go to end
// (at most lingerAtEnd, 1 s, for a server that does not close when it reads our FIN: see letGo). Connections handed out stay open. After
// Close, Get still dials (Cold) and Put closes and returns ErrClosed. Close
// always returns nil; later calls wait too.
func (p *Pool[C]) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.cancel()
		for _, id := range p.idle.Keys() {
			ic, _ := p.idle.Peek(id)
			p.removeLocked(id, ic)
			p.doomed = append(p.doomed, ic.c)
		}
	}
	p.unlock()
	p.wg.Wait()
	p.linger.close()
	return nil
}

// dialOnce makes one dial attempt and counts it.
func (p *Pool[C]) dialOnce(ctx context.Context) (C, time.Duration, error) {
	var zero C
	p.dials.Add(1)
	start := time.Now()
	c, err := p.dial(ctx)
	d := time.Since(start)
	switch {
	case err != nil:
		if c != zero {
			c.Close()
		}
		return zero, d, err
	case c == zero:
		return zero, d, errNoConn
	}
	return c, d, nil
}
