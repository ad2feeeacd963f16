// Package forward listens on a local TCP port and relays every connection to
// a remote address: zero-copy on Linux (splice), half-close passed on both
// ways, exact byte counts, and a bounded record of every connection.
package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warmport/warmport/allowlist"
	"github.com/warmport/warmport/forward/internal/rawsock"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/proxyhdr"
	"github.com/warmport/warmport/recycle"
	"github.com/warmport/warmport/session"
)

// DefaultDialTimeout bounds an upstream dial when Config.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// ErrIdle is what Serve returns when it stopped because no connection came
// for Config.ExitIdle.
var ErrIdle = errors.New("forward: idle")

// Config says what to forward and how. The zero value of every optional
// field is documented next to it.
type Config struct {
	Local string // address to listen on: HOST:PORT (port 0: the OS picks) or unix:PATH; with Listener, its name; required
	// Remote is the address to dial: HOST:PORT or unix:PATH, or several
	// (failover candidates, tried in order) separated by commas; required.
	Remote string

	DialTimeout time.Duration // 0 = DefaultDialTimeout
	// DialStream, if set, reaches remote, Remote or one of its failover
	// candidates, as a Stream (TLS, an SSH channel) instead of a socket of
	// the forwarder's own, each candidate its own way (its TLS name); ctx
	// carries the dial timeout. nil: dial remote.
	DialStream  func(ctx context.Context, remote string) (Stream, error)
	Via         string        // the SSH server DialStream reaches Remote through, for the summary; "" = none
	IdleTimeout time.Duration // close a pair after this long with no byte either way; 0 = never
	MaxConns    int           // clients relayed at once, extra ones wait in the backlog; 0 = no limit
	ExitIdle    time.Duration // Serve returns ErrIdle after this long with no connection; 0 = never
	// Reuse, if set, recycles an upstream once its client has closed
	// cleanly, when the protocol's framing proves the connection clean
	// (recycle.Tracker), after the protocol's reset; nil: never.
	Reuse      recycle.Protocol
	Pool       pool.Options // warm pool
	MaxRecords int          // closed connections kept for the summary; 0 = session.DefaultMaxRecords

	// OnClose, if set, is called once for each connection after it closed,
	// never on an event loop: each loop's pairs are recorded in the order
	// they ended by a goroutine of the loop's, a copier's pair by its own
	// goroutine, so calls may overlap, and a slow OnClose delays later
	// records, never a byte of another pair.
	OnClose func(session.Record)

	// Operations (ops.go). Allow, if set, admits only the clients it
	// allows; the others are reset at accept and counted in Totals.Denied;
	// nil: everyone. ProxyProtocol, if set, sends REMOTE a PROXY protocol
	// header of that version before a client's bytes; 0: none. Listener,
	// if set, is served instead of listening on Local (a socket passed by
	// systemd), and is the Forwarder's to close; nil: listen on Local.
	// Logf, if set, prints notices (denied clients, candidates going down
	// and coming back), one line a call; nil: none.
	Allow         *allowlist.List
	ProxyProtocol proxyhdr.Version
	Listener      net.Listener
	Logf          func(format string, args ...any)
}

// Forwarder owns a listener, the warm pool and every pair it relays.
type Forwarder struct {
	cfg       Config
	listener  net.Listener     // a *net.TCPListener or, for unix:PATH, a *net.UnixListener
	ln        *net.TCPListener // listener, if TCP
	localUnix string           // cfg.Local if it is unix:PATH, else ""
	pool      *pool.Pool[upConn]
	recs      *session.Ring
	started   time.Time
	sem       chan struct{} // nil when MaxConns is 0

	hardCtx    context.Context // canceled when the drain gives up: aborts dials
	hardCancel context.CancelFunc
	quit       chan struct{} // closed when accepting stops
	quitOnce   sync.Once
	serving    sync.WaitGroup // Serve itself
	pairs      sync.WaitGroup // one per accepted connection
	native                    // the platform's sockets and, on Linux, the event loops

	nextID             atomic.Uint64 // the last pair's ID: also how many were accepted
	failed             atomic.Uint64
	bytesUp, bytesDown atomic.Int64
	idleExit           atomic.Bool
	noReset            atomic.Bool    // --reuse: the server lacks the protocol's reset; recycle nothing
	resets             sync.WaitGroup // recycles under way (reuseUpstream)
	acceptBackoffs     atomic.Uint64  // temporary accept errors survived (EMFILE, ...)
	live               registry       // every pair from start to record
	mu                 sync.Mutex
	idleTimer          *time.Timer
	idleGen            uint64
	ops
}

// New validates cfg, listens on cfg.Local and starts warming the pool.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Local == "" || cfg.Remote == "" {
		return nil, errors.New("forward: Local and Remote are required")
	}
	f := &Forwarder{cfg: cfg, recs: session.NewRing(cfg.MaxRecords), quit: make(chan struct{}),
		live: registry{shards: []*shard{newShard()}}}
	if cfg.MaxConns > 0 {
		f.sem = make(chan struct{}, cfg.MaxConns)
	}
	_, localUnix := unixPath(cfg.Local)
	if _, remoteUnix := unixPath(cfg.Remote); (localUnix || remoteUnix) && !UnixSockets {
		return nil, errNoUnix
	}
	if err := f.initOps(); err != nil {
		return nil, err
	}
	var err error
	if f.listener, err = f.listen(); err != nil {
		return nil, err
	}
	if f.pool, err = pool.New(pool.WithDial(cfg.Pool, f.dial)); err != nil {
		f.listener.Close()
		return nil, err
	}
	f.flushPool.Store(f.pool)
	if err := f.startNative(); err != nil { // now, while fds are plentiful
		f.pool.Close()
		f.listener.Close()
		f.closeAccept()
		return nil, err
	}
	f.hardCtx, f.hardCancel = context.WithCancel(context.Background())
	f.started = time.Now()
	return f, nil
}

// listen listens on cfg.Local: TCP, or a Unix socket for unix:PATH.
func (f *Forwarder) listen() (net.Listener, error) {
	if f.cfg.Listener != nil {
		return f.adopt(f.cfg.Listener)
	}
	if path, ok := unixPath(f.cfg.Local); ok {
		ln, err := listenUnix(path)
		if err != nil {
			// Not wrapped: the errno's usual advice is about ports.
			return nil, fmt.Errorf("listen on %s: %v", f.cfg.Local, err)
		}
		f.localUnix = f.cfg.Local
		return ln, nil
	}
	lc := net.ListenConfig{KeepAlive: keepAlive(f.cfg.Local)}
	ln, err := lc.Listen(context.Background(), "tcp", f.cfg.Local)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", f.cfg.Local, err)
	}
	f.ln = ln.(*net.TCPListener)
	return ln, nil
}

// Addr is the address actually listened on: a *net.TCPAddr (port 0
// resolved), or for unix:PATH an address whose String is unix:PATH.
func (f *Forwarder) Addr() net.Addr {
	if f.localUnix != "" {
		return rawsock.UnixAddr(f.localUnix)
	}
	return f.ln.Addr()
}

func (f *Forwarder) dialTimeout() time.Duration {
	if f.cfg.DialTimeout > 0 {
		return f.cfg.DialTimeout
	}
	return DefaultDialTimeout
}

// keepAlive is the TCP keepalive for sockets to or from addr: Go's default
// (probes after 15 s idle) finds peers that vanished without a word, but on
// loopback no peer can: the kernel closes or resets a dead process's sockets.
// There it is off, which saves four setsockopt calls per connection.
func keepAlive(addr string) time.Duration {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
		return -1
	}
	return 0
}

// Serve accepts connections until ctx is done (it returns nil) or no
// connection came for ExitIdle (it returns ErrIdle). It never gives up on
// temporary accept errors such as running out of file descriptors: it backs
// off, 5 ms doubling to 1 s, as net/http's Server does. Connections still
// open when it returns keep going: Shutdown drains them.
func (f *Forwarder) Serve(ctx context.Context) error {
	f.serving.Add(1)
	defer f.serving.Done()
	stop := context.AfterFunc(ctx, f.stopAccepting)
	defer stop()
	f.armIdle()
	var delay time.Duration
	for {
		if !f.acquire() {
			return f.serveResult()
		}
		c, err := f.accept()
		if err != nil {
			f.freeSlot()
			select {
			case <-f.quit:
				return f.serveResult()
			default:
			}
			if !isTemporary(err) {
				f.stopAccepting()
				return fmt.Errorf("accept on %s: %w", f.Addr(), err)
			}
			f.acceptBackoffs.Add(1)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-f.quit:
			}
			continue
		}
		delay = 0
		if !f.admit(c) {
			f.freeSlot()
			continue
		}
		f.start(c)
	}
}

func (f *Forwarder) serveResult() error {
	if f.idleExit.Load() {
		return ErrIdle
	}
	return nil
}

func isTemporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED,
		syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acquire waits for a MaxConns slot before accepting, so extra clients wait
// in the kernel's backlog (none is refused) and the upstream never sees
// more than MaxConns of them at once.
func (f *Forwarder) acquire() bool {
	if f.sem == nil {
		select {
		case <-f.quit:
			return false
		default:
			return true
		}
	}
	select {
	case f.sem <- struct{}{}:
		return true
	case <-f.quit:
		return false
	}
}

func (f *Forwarder) freeSlot() {
	if f.sem != nil {
		<-f.sem
	}
}

func (f *Forwarder) stopAccepting() {
	f.quitOnce.Do(func() {
		close(f.quit)
		f.listener.Close() // a Unix listener removes its socket file
		f.closeAccept()
		f.mu.Lock()
		if f.idleTimer != nil {
			f.idleTimer.Stop()
		}
		f.mu.Unlock()
	})
}

// armIdle starts the ExitIdle clock when no pair is live; every change of
// the registry bumps idleGen so a stale timer does nothing.
func (f *Forwarder) armIdle() {
	if f.cfg.ExitIdle <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armIdleLocked()
}

func (f *Forwarder) armIdleLocked() {
	f.idleGen++
	if f.idleTimer != nil {
		f.idleTimer.Stop()
		f.idleTimer = nil
	}
	if f.cfg.ExitIdle <= 0 || f.live.len() > 0 {
		return
	}
	gen := f.idleGen
	f.idleTimer = time.AfterFunc(f.cfg.ExitIdle, func() {
		f.mu.Lock()
		fire := gen == f.idleGen && f.live.len() == 0
		f.mu.Unlock()
		if fire {
			f.idleExit.Store(true)
			f.stopAccepting()
		}
	})
}

func (f *Forwarder) start(c *sock) {
	p := &pair{f: f, id: f.nextID.Add(1), client: c, started: time.Now()}
	p.engine = f.engineFor(p)
	f.live.register(p)
	f.armIdle()
	f.pairs.Add(1)
	if p.engine.inline() { // a warm upstream at hand: no dial, no goroutine
		if up, src, ok := f.pool.TryGet(); ok {
			p.dial = time.Since(p.started) // the probe: what dial_ms says for a warm one
			f.relay(p, up, src)
			return
		}
	}
	go f.handle(p)
}

// handle borrows an upstream and relays in p's own goroutine.
func (f *Forwarder) handle(p *pair) {
	t0 := time.Now()
	up, src, _, err := f.pool.Get(f.hardCtx)
	p.dial = time.Since(t0)
	if err != nil {
		f.dialFailed(p, err)
		p.client.Close()
		f.record(p)
		return
	}
	f.relay(p, up, src)
}

// dialFailed ends p whose upstream dial (or replay's redial) failed. A dial
// that Shutdown cancelled is the shutdown's doing, recorded as such and not
// counted as a failure; any other is a failure, and the client gets a reset.
func (f *Forwarder) dialFailed(p *pair, err error) {
	if f.hardCtx.Err() != nil {
		p.abort(session.ClosedByShutdown, nil)
		return
	}
	if !p.aborted.Load() {
		f.failed.Add(1)
	}
	p.abort(session.ClosedByError, err)
}

// afterBorrow, if set (tests only, before any forwarder starts), runs when
// a pair has its upstream, before a byte moves: a test makes the upstream
// go stale there, after the pool's probe passed it.
var afterBorrow func(src pool.Source)

// relay starts relaying p with upstream up.
func (f *Forwarder) relay(p *pair, up upConn, src pool.Source) {
	if afterBorrow != nil {
		afterBorrow(src)
	}
	p.source, p.upAddr = src, upstreamAddr(up)
	if f.cfg.Reuse != nil {
		p.tracker = f.cfg.Reuse.NewTracker() // a fresh dial, or a clean (and reset) one
	}
	p.replayOn = src != pool.Cold
	p.setUpstream(up)
	if p.aborted.Load() { // shutdown came during the dial
		up.Close()
		p.client.Close()
		f.record(p)
		return
	}
	if err := f.sendHeader(p, up); err != nil {
		f.dialFailed(p, err)
		up.Close()
		p.client.Close()
		f.record(p)
		return
	}
	p.engine.relay(p)
}

// The one path by which every relayed pair ends: its engine calls endPair
// once both directions have ended, or the two halves, release on the loop
// and record off it.

// endPair releases p's sockets and records it.
func (f *Forwarder) endPair(p *pair) {
	f.release(p)
	f.record(p)
}

// release stops p's idle timer, recycles or closes its upstream and closes
// its client.
func (f *Forwarder) release(p *pair) {
	if t := p.idle.Load(); t != nil {
		t.Stop()
	}
	recycle := p.recyclable()
	if recycle {
		p.engine.detach(p)
		f.reuseUpstream(p.upstream.Load())
	} else {
		p.closeUpstream()
	}
	p.client.Close()
}

// record records p, frees its MaxConns slot and lets Shutdown know; OnClose
// runs here.
func (f *Forwarder) record(p *pair) {
	defer f.pairs.Done()
	defer f.freeSlot()
	reason, err := p.outcome()
	rec := session.Record{
		ID:         p.id,
		Client:     remoteAddr(p.client),
		Upstream:   p.upAddr,
		Source:     p.source.String(),
		DialMS:     session.Millis(p.dial),
		Started:    p.started,
		DurationMS: session.Millis(time.Since(p.started)),
		BytesUp:    p.bytesUp.Load(),
		BytesDown:  p.bytesDown.Load(),
		ClosedBy:   reason,
	}
	if err != nil {
		rec.Error = err.Error()
	}
	f.recs.Add(rec)
	f.live.unregister(p)
	f.armIdle()
	if f.cfg.OnClose != nil {
		f.cfg.OnClose(rec)
	}
}

// growStack grows the calling goroutine's stack to 8 KiB in one step, while
// it is a few frames deep: a new goroutine starts with 2 KiB, and the dial path
// would otherwise grow it twice from deep inside its calls, each time
// copying and adjusting every frame on the stack.
//
//go:noinline
func growStack() {
	var pad [5 << 10]byte
	touchStack(pad[:])
}

//go:noinline
func touchStack(pad []byte) { pad[len(pad)-1] = 1 }

// Shutdown stops accepting, waits until every connection has ended or ctx is
// done, then aborts the rest (closed_by "shutdown"), closes the pool and
// returns the session's summary. Call it once, after or instead of Serve.
func (f *Forwarder) Shutdown(ctx context.Context) *session.Summary {
	f.stopAccepting()
	f.serving.Wait()
	done := make(chan struct{})
	go func() {
		f.pairs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		f.hardCancel()
		for _, p := range f.live.all() {
			p.abort(session.ClosedByShutdown, nil)
		}
		<-done
	}
	f.hardCancel()
	f.resets.Wait()
	f.stopNative()
	f.pool.Close()
	s := f.Summary()
	return &s
}
