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
	"github.com/warmport/warmport/session"
)

// pair is one client and its upstream while bytes flow between them. Its
// engine moves the bytes (engine.go); the state and decisions here are
// both engines'.
type pair struct {
	f       *Forwarder
	id      uint64
	client  *sock
	started time.Time
	upAddr  string

	engine engine   // the loop, or the copier's state of the pair (*copyPair), chosen when the pair starts (engineFor)
	lp     loopPair // the event loop's state of the pair (empty where there is no loop)

	upstream           atomic.Pointer[sock]   // the upstream if it is a socket; swapped only by a replay redial
	upStream           atomic.Pointer[Stream] // the upstream if it is a Stream (upstream.go); swapped likewise
	bytesUp, bytesDown atomic.Int64           // client->upstream, upstream->client
	last               atomic.Int64           // unix ns of the last byte either way (IdleTimeout only)
	aborted            atomic.Bool            // a reason is final: errors from here on are our own closes
	idle               atomic.Pointer[time.Timer]

	endMu    sync.Mutex // guards closedBy and err only, so abort never waits on mu
	closedBy string     // first clean end, or the abort reason, which overrides it
	err      error

	mu            sync.Mutex // the replay window and the recycling state
	replay        []byte     // client's first bytes while replayOn
	replayOn      bool       // pooled upstream that has not sent a byte yet
	redialed      bool
	clientEOF     bool
	recycling     bool // --reuse: the client closed cleanly and the tracker proved the upstream clean; stop reading it
	readerStopped bool // the upstream's reader stopped for the recycle, cleanly, between chunks
	source        pool.Source
	dial          time.Duration

	tracker recycle.Tracker // --reuse: the protocol's view of the upstream (reuse.go); nil without
	trackMu sync.Mutex      // the tracker is not safe for concurrent use
}

// bufSize is the buffer for a chunk read through user space: the copier's
// while data flows (getBuf), and on the loop the client's first bytes while
// they are kept for a replay and every chunk of a --reuse pair. 32 KiB is SSH's
// largest channel packet (x/crypto's): a chunk of a channel is one packet,
// not two, which halves the copier's calls per channel packet.
const bufSize = 32 << 10

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

// clientEnded: the client sent EOF and every byte it sent before is
// through. It decides, under mu, whether the upstream is recycled (true:
// its reader stops between chunks) or gets the EOF (false: half-close), and
// runs locked with that decision under mu too, so a redial, which swaps the
// upstream under mu, comes wholly before it or sees clientEOF.
func (p *pair) clientEnded(locked func(recycling bool)) bool {
	p.cleanEnd(session.ClosedByClient)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clientEOF = true
	p.recycling = p.mayRecycle()
	if locked != nil {
		locked(p.recycling)
	}
	return p.recycling
}

// upstreamEnded: the upstream sent EOF and every byte before it is through;
// the client gets the EOF (half-close).
func (p *pair) upstreamEnded() { p.cleanEnd(session.ClosedByRemote) }

// upstreamReaderStopped notes that the upstream's reader stopped cleanly
// between chunks for the recycle clientEnded decided.
func (p *pair) upstreamReaderStopped() {
	p.mu.Lock()
	p.readerStopped = true
	p.mu.Unlock()
}

// recyclable: --reuse asked for it, the upstream's reader stopped cleanly,
// and nothing aborted the pair.
func (p *pair) recyclable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycling && p.readerStopped && !p.aborted.Load()
}

// fail ends the pair with an error, unless the error is only the echo of our
// own abort (a closed connection).
func (p *pair) fail(err error) {
	if p.aborted.Load() {
		return
	}
	p.abort(session.ClosedByError, err)
}

// abort makes reason final (the first abort wins over any clean end), resets
// both sockets, and wakes its engine so the pair ends.
//
// An abort stays an abort: each peer gets a reset (SO_LINGER 0, then close),
// never the FIN a close sends, so a stream cut off by a peer's reset, the
// idle timeout, a drain that gave up or a failed replay never looks whole
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
	if s := p.upStream.Load(); s != nil {
		(*s).Abort()
	}
	p.engine.wake(p)
}

// cleanEnd records a clean end; the first one wins, and an abort overrides it.
func (p *pair) cleanEnd(reason string) {
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
		p.abort(session.ClosedByTimeout, nil)
		return
	}
	p.idle.Load().Reset(d - since)
}
