package forward

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/warmport/warmport/forward/internal/poller"
)

// The event loops: a goroutine per loop relays every pair placed on it (one
// loop per P). Both sockets of a pair sit in its loop's epoll set
// (internal/poller), edge-triggered for reading and writing, from the pair's
// start to its end, so relaying costs no goroutine, no park or wake-up, no
// deadline and no epoll_ctl per chunk. An idle pair holds its two sockets and
// its struct, nothing else.
//
// The sockets are the forwarder's own (internal/rawsock), never in Go's
// netpoller: the loop reaches an fd only under its socket's lock, so a Close
// from another goroutine (an abort, the idle timer, Shutdown) can never let an
// fd number be reused under the loop.

// native is the Linux part of a Forwarder: its event loops, and the
// accept and dial state of its own sockets.
type native struct {
	loops    []*loop         // one per P
	nextLoop atomic.Uint32   // engineFor's turn
	lnFile   *os.File        // the listener's duplicate that accept reads
	lnRC     syscall.RawConn // lnFile's
	// literal is REMOTE's address once parsed, if it is an IP literal.
	literal atomic.Pointer[[]netip.AddrPort]
	// accept's, under acceptMu (Serve may run twice at once): what
	// acceptOnce found, and acceptOnce as a func value made once (a closure
	// per call would cost allocations per client).
	acceptMu   sync.Mutex
	accepted   int
	acceptAddr netip.AddrPort
	acceptErr  error
	acceptFn   func(fd uintptr) bool
}

// loop is one event loop: its poller, its pairs, and what only its
// goroutine touches.
type loop struct {
	f        *Forwarder
	pl       *poller.Poller
	wg       sync.WaitGroup
	stopOnce sync.Once

	shard *shard // the registry's shard of the pairs placed on this loop

	// The loop goroutine's own.
	pipes    poller.Pipes
	buf      []byte   // the replay window's reads
	evs      []*pair  // this batch's pairs
	recorder recorder // records ended pairs off the loop
}

// A pair's sockets are keyed 2*id (the client) and 2*id+1 (the upstream):
// ids start at 1, so no key is poller.WakeKey.
func clientKey(id uint64) uint64 { return 2 * id }

// startNative opens the listener's duplicate that accept reads and starts
// a loop per P (GOMAXPROCS, one per core by default): pairs are placed on
// them in turn and stay there. If epoll cannot be had, New fails.
func (f *Forwarder) startNative() error {
	if err := f.openAccept(); err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	for range runtime.GOMAXPROCS(0) {
		l, err := f.newLoop()
		if err != nil {
			f.stopNative()
			return err
		}
		f.loops = append(f.loops, l)
		f.live.shards = append(f.live.shards, l.shard)
	}
	return nil
}

// engineFor picks p's engine: the loop for a pair whose ends are both the
// forwarder's own sockets, the copier for a Stream upstream (DialStream) or
// when a test asks for it.
func (f *Forwarder) engineFor(p *pair) engine {
	if testEngine == "copier" || f.cfg.DialStream != nil {
		return new(copyPair)
	}
	l := f.loops[int(f.nextLoop.Add(1))%len(f.loops)]
	return l
}

func (f *Forwarder) newLoop() (*loop, error) {
	pl, err := poller.New()
	if err != nil {
		return nil, err
	}
	l := &loop{f: f, pl: pl, shard: newShard(), buf: make([]byte, bufSize), evs: make([]*pair, poller.Batch)}
	l.recorder.start(f)
	l.wg.Add(1)
	go l.run()
	return l, nil
}

// stopNative stops the loops once every pair has ended. Later calls do
// nothing.
func (f *Forwarder) stopNative() {
	for _, l := range f.loops {
		l.stop()
	}
}

func (l *loop) stop() {
	l.stopOnce.Do(func() {
		l.pl.Stop()
		l.wg.Wait()
		l.recorder.stop()
		l.pipes.Close()
		l.pl.Close()
	})
}

// pairs is the registry's shard of the pairs on l (registry.shardOf).
func (l *loop) pairs() *shard { return l.shard }

// post hands p's news (an abort, a redial's outcome) to the loop.
func (l *loop) post(p *pair) { l.pl.Post(p.id) }

// add hands p to the loop (onLoop) and registers its two sockets; the loop
// relays from the first event on. Edge-triggered registration reports what
// is already readable at once. Both join under the shard's mu, under which
// the loop finds a pair for an event: the loop steps p only once both are
// in its set. Else the client's first bytes, come before the upstream
// joined, could fail on a stale upstream, whose redial closes it and makes
// its add fail (a client reset where a replay was due).
func (l *loop) add(p *pair) error {
	l.shard.mu.Lock()
	defer l.shard.mu.Unlock()
	p.lp.onLoop = true
	if err := l.addSocket(p, false); err != nil {
		return err
	}
	return l.addSocket(p, true)
}

func (l *loop) addSocket(p *pair, upstream bool) error {
	c, key := p.client, clientKey(p.id)
	if upstream {
		c, key = p.upstream.Load(), key+1
	}
	return c.Do(func(fd int) error { return l.pl.Add(fd, key) })
}

func (l *loop) run() {
	defer l.wg.Done()
	growStack()
	for {
		events, err := l.pl.Wait()
		if err != nil {
			panic(fmt.Sprintf("warmport: epoll_wait: %v", err)) // EBADF, EFAULT, EINVAL: a bug of ours
		}
		woken := false
		l.shard.mu.Lock()
		for i := range events {
			key := poller.Key(&events[i])
			if key == poller.WakeKey {
				woken = true
				l.evs[i] = nil
				continue
			}
			l.evs[i] = l.onLoopLocked(key / 2) // nil: a late event of a pair that ended
		}
		l.shard.mu.Unlock()
		for i := range events {
			if p := l.evs[i]; p != nil {
				l.evs[i] = nil
				l.event(p, poller.Key(&events[i])%2 == 1, events[i].Events)
			}
		}
		if woken && l.takePosts() {
			return
		}
	}
}

// takePosts runs what other goroutines posted; it reports whether the loop
// must stop.
func (l *loop) takePosts() bool {
	posted, stopping := l.pl.Take()
	for _, id := range posted {
		l.shard.mu.Lock()
		p := l.onLoopLocked(id)
		l.shard.mu.Unlock()
		if p != nil { // nil: ended already, or not on the loop yet (relay posts again)
			l.news(p)
		}
	}
	return stopping
}

// onLoopLocked is the pair id names if the loop relays it: handed over by
// add, not ended yet. The caller holds l.shard.mu.
func (l *loop) onLoopLocked(id uint64) *pair {
	if p := l.shard.pairs[id]; p != nil && p.lp.onLoop {
		return p
	}
	return nil
}

// recorder records ended pairs (Forwarder.record) in a goroutine of its
// own, so an OnClose that blocks (a stalled terminal) never stalls the loop.
type recorder struct {
	mu   sync.Mutex
	q    []*pair
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

func (r *recorder) start(f *Forwarder) {
	r.kick, r.quit = make(chan struct{}, 1), make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.kick:
			case <-r.quit:
				return
			}
			r.mu.Lock()
			q := r.q
			r.q = nil
			r.mu.Unlock()
			for _, p := range q {
				f.record(p)
			}
		}
	}()
}

func (r *recorder) push(p *pair) {
	r.mu.Lock()
	r.q = append(r.q, p)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// stop ends the goroutine; call it once every pair has ended.
func (r *recorder) stop() {
	close(r.quit)
	r.wg.Wait()
}
