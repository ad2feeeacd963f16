package forward

import (
	"errors"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
)

// pair is one client and its upstream while bytes flow between them. The
// relay engine moves the bytes: the event loop on Linux (relay_linux.go),
// a goroutine per direction elsewhere (relay.go).
type pair struct {
	f       *Forwarder
	id      uint64
	client  *sock
	started time.Time
	upAddr  string

	toUp, toClient dir
	eng            pairEngine // the relay engine's own state of the pair

	upstream atomic.Pointer[sock] // swapped only by a replay redial
	up, down atomic.Int64         // bytes client->upstream, upstream->client
	last     atomic.Int64         // unix ns of the last byte either way (IdleTimeout only)
	aborted  atomic.Bool          // a reason is final: errors from here on are our own closes
	idle     atomic.Pointer[time.Timer]

	endMu    sync.Mutex // guards closedBy and err only, so abort never waits on mu
	closedBy string     // first clean end, or the abort reason, which overrides it
	err      error

	mu          sync.Mutex // the replay window and the recycling state
	replay      []byte     // client's first bytes while replayOn
	replayOn    bool       // pooled upstream that has not sent a byte yet
	redialed    bool
	clientEOF   bool
	recycling   bool // --reuse: the client closed cleanly and the tracker proved the upstream clean; stop reading it
	interrupted bool // upstreamToClient stopped for recycling, cleanly, between chunks
	source      pool.Source
	dial        time.Duration

	tracker recycle.Tracker // --reuse: the protocol's view of the upstream (reuse.go); nil without
	trackMu sync.Mutex      // the tracker is not safe for concurrent use
}

// bufSize is the buffer for a chunk read through user space: the client's
// first bytes while they are kept for a replay (and, in the goroutine relay
// where there is no splice, every chunk). Everything else splices.
const bufSize = 16 << 10

func (p *pair) count(pairCtr, total *atomic.Int64, n int64) {
	if n <= 0 {
		return
	}
	pairCtr.Add(n)
	total.Add(n)
	if p.f.cfg.IdleTimeout > 0 {
		p.last.Store(time.Now().UnixNano())
	}
}

// The replay window: while a pooled upstream has not sent a byte, the
// client's first bytes are kept, so an upstream that died in the pool is
// replaced by a fresh dial without the client noticing.

// replayMax bounds the client's first bytes kept for a replay: enough for any
// handshake or first request, small enough to cost nothing worth mentioning.
const replayMax = 64 << 10

// shouldRedial: a pooled upstream that ended before its first byte, while
// the client's first bytes are still kept, is replaced once.
func (p *pair) shouldRedial(err error) bool {
	if p.aborted.Load() || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replayOn && !p.recycling && !p.redialed
}

// stopRecycling notes that upstreamToClient stopped cleanly between chunks
// for the recycle clientDone asked for.
func (p *pair) stopRecycling() {
	p.mu.Lock()
	p.interrupted = true
	p.mu.Unlock()
}

// recyclable: --reuse asked for it, upstreamToClient stopped cleanly, and
// nothing aborted the pair.
func (p *pair) recyclable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycling && p.interrupted && !p.aborted.Load()
}

// fail ends the pair with an error, unless the error is only the echo of our
// own abort (a closed connection).
func (p *pair) fail(err error) {
	if p.aborted.Load() {
		return
	}
	p.abort(ClosedByError, err)
}

// abort makes reason final (the first abort wins over any clean end), resets
// both sockets, and wakes the relay so it sees the abort and finishes.
//
// An abort stays an abort: each peer gets a reset (SO_LINGER 0, then close),
// never the FIN a close sends, so a stream cut off by a peer's reset, the
// idle timeout, a drain that gave up or a failed replay never looks complete
// to a protocol that ends at EOF. Clean ends never come here: they pass the
// EOF on (half-close) and close once both directions are through.
func (p *pair) abort(reason string, err error) {
	p.endMu.Lock()
	if p.aborted.Load() {
		p.endMu.Unlock()
		return
	}
	p.aborted.Store(true)
	p.closedBy, p.err = reason, err
	p.endMu.Unlock()
	resetClose(p.client)
	if up := p.upstream.Load(); up != nil {
		resetClose(up)
	}
	p.wake()
}

// end records a clean end; the first one wins, and an abort overrides it.
func (p *pair) end(reason string) {
	p.endMu.Lock()
	if p.closedBy == "" {
		p.closedBy = reason
	}
	p.endMu.Unlock()
}

// outcome is how the pair ended, for its record.
func (p *pair) outcome() (string, error) {
	p.endMu.Lock()
	defer p.endMu.Unlock()
	return p.closedBy, p.err
}

// startIdleTimer arms the IdleTimeout timer, if there is one.
func (p *pair) startIdleTimer() {
	if d := p.f.cfg.IdleTimeout; d > 0 {
		p.last.Store(time.Now().UnixNano())
		t := time.AfterFunc(time.Duration(math.MaxInt64), p.checkIdle)
		p.idle.Store(t) // before it can fire: checkIdle re-arms it
		t.Reset(d)
	}
}

// checkIdle runs on the idle timer: abort if no byte moved for IdleTimeout,
// otherwise sleep again until that could be true.
func (p *pair) checkIdle() {
	d := p.f.cfg.IdleTimeout
	since := time.Since(time.Unix(0, p.last.Load()))
	if since >= d {
		p.abort(ClosedByTimeout, nil)
		return
	}
	p.idle.Load().Reset(d - since)
}
