package forward

import (
	"errors"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warmport/warmport/pool"
)

// replayMax bounds the client's first bytes kept for a replay: enough for any
// handshake or first request, small enough to cost nothing worth mentioning.
const replayMax = 64 << 10

// parkAfter is how long an idle direction waits in Go's netpoller, keeping
// its goroutine, before it parks in the forwarder's epoll set and lets the
// goroutine go. Active flows never park; a connection idle for longer costs
// its two sockets and a small struct, no goroutine stack. Each Forwarder
// copies it at New; tests shorten it to exercise parking.
var parkAfter = time.Second

// aLongTimeAgo is a deadline in the past: it interrupts a parked read at once.
var aLongTimeAgo = time.Unix(1, 0)

var (
	errParked = errors.New("forward: parked")          // the goroutine must exit; the parker resumes the direction
	errStop   = errors.New("forward: stop to recycle") // --reuse: upstreamToClient stops between chunks
	// errOverBudget: nothing to read and waitBudget directions already wait
	// in the netpoller; park at once.
	errOverBudget = errors.New("forward: over the wait budget")
)

// States of a direction. Whoever moves it from dirParked to dirRunning owns
// it and runs it: the parker on readiness, abort, or the --reuse interrupt.
const (
	dirRunning int32 = iota
	dirParked
	dirDone
)

// dir is one direction of a pair.
type dir struct {
	p     *pair
	state atomic.Int32
	lr    io.LimitedReader
}

// resume runs a parked direction again, if it is still parked.
func (d *dir) resume() {
	if d.state.CompareAndSwap(dirParked, dirRunning) {
		d.p.f.parker.forget(d.key())
		go d.run()
	}
}

// park gives up the calling goroutine: src is armed in the parker, which
// resumes d when src is readable. It returns false when the caller must go on
// instead: parking failed, or an abort or recycle came meanwhile.
func (d *dir) park(src *net.TCPConn) bool {
	d.state.Store(dirParked)
	if err := d.p.f.parker.park(d, src); err != nil {
		return !d.state.CompareAndSwap(dirParked, dirRunning)
	}
	// An abort or recycle that came just before we were parked did not see
	// us parked: take the direction back and let the caller look again.
	if d.p.aborted.Load() || (d == &d.p.toClient && d.p.isRecycling()) {
		if d.state.CompareAndSwap(dirParked, dirRunning) {
			d.p.f.parker.forget(d.key())
			return false
		}
	}
	return true
}

// done: d has finished. A direction that finishes after the other one
// completes the pair, which closes both sockets: a close sends the FIN a
// shutdown would (nothing is left unread), so it skips the shutdown.
func (d *dir) done() bool { return d.state.Load() == dirDone }

// finish marks d done; the second direction to finish completes the pair.
func (d *dir) finish() {
	d.state.Store(dirDone)
	if d.p.ended.Add(1) == 2 {
		d.p.f.complete(d.p)
	}
}

// pair is one client and its upstream while bytes flow between them. Each
// direction runs in a goroutine only while it has work (clientToUpstream,
// upstreamToClient); an idle one parks (see parkAfter).
type pair struct {
	f       *Forwarder
	id      uint64
	client  *net.TCPConn
	started time.Time
	upAddr  string

	toUp, toClient dir
	ended          atomic.Int32 // directions finished

	upstream atomic.Pointer[net.TCPConn] // swapped only by a replay redial
	up, down atomic.Int64                // bytes client->upstream, upstream->client
	last     atomic.Int64                // unix ns of the last byte either way (IdleTimeout only)
	aborted  atomic.Bool                 // a reason is final: errors from here on are our own closes
	idle     atomic.Pointer[time.Timer]

	endMu    sync.Mutex // guards closedBy and err only, so abort never waits on mu
	closedBy string     // first clean end, or the abort reason, which overrides it
	err      error

	mu          sync.Mutex // the replay window and the recycling state
	replay      []byte     // client's first bytes while replayOn
	replayOn    bool       // pooled upstream that has not sent a byte yet
	redialed    bool
	clientEOF   bool
	recycling   bool // --reuse: the client closed cleanly; stop reading the upstream
	interrupted bool // upstreamToClient stopped for recycling, cleanly, between chunks
	source      pool.Source
	dial        time.Duration
}

// start relays both directions: upstreamToClient in the calling goroutine,
// clientToUpstream in a new one. The pair completes when both have finished,
// from whichever goroutine finishes last.
func (p *pair) start() {
	if d := p.f.cfg.IdleTimeout; d > 0 {
		p.last.Store(time.Now().UnixNano())
		t := time.AfterFunc(time.Duration(math.MaxInt64), p.checkIdle)
		p.idle.Store(t) // before it can fire: checkIdle re-arms it
		t.Reset(d)
	}
	go p.clientToUpstream()
	p.upstreamToClient()
}

// bufSize is the buffer for a chunk read through user space: the client's
// first bytes while they are kept for a replay (and, where there is no
// splice, every chunk). Everything else splices.
const bufSize = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// bufsOut, if set (tests only, before any forwarder starts), sees every
// buffer taken (+1) and given back (-1).
var bufsOut func(delta int)

func getBuf() *[]byte {
	if bufsOut != nil {
		bufsOut(1)
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if bufsOut != nil {
		bufsOut(-1)
	}
	bufPool.Put(b)
}

// next moves the next chunk from src to dst for d (what src has queued,
// spliced), waiting for one if need be: first in Go's netpoller for up to
// parkAfter (unless waitBudget directions already wait there), then parked
// (errParked: the caller's goroutine must exit; the direction resumes when
// src is readable). Nothing is held while it waits: no buffer, no pipe. n is
// what reached dst; eof is src's clean end.
func (p *pair) next(d *dir, dst, src *net.TCPConn) (n int64, eof bool, err error) {
	budget := true // errOverBudget: waitBudget directions already wait there, park at once
	for {
		if d == &p.toClient && p.f.cfg.Reuse && p.isRecycling() {
			return 0, false, errStop
		}
		// The replay needs the client's first bytes in hand; all else splices.
		peek := d == &p.toClient || !p.replaying()
		bp, m, armed, err := p.recv(d, src, peek, budget)
		if armed {
			// Clear the wait's deadline, whatever ended the wait: once past,
			// Go fails every read on src with a timeout, queued bytes or not.
			// A --reuse interrupt is not lost by this: the recycling flag,
			// checked here, in armWait and in park, is what counts.
			src.SetReadDeadline(time.Time{})
		}
		switch {
		case err == errOverBudget:
			if d.park(src) {
				return 0, false, errParked
			}
			budget = false // parking failed, or an abort or recycle came: wait, which sees those
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && armed:
			if d == &p.toClient && p.isRecycling() {
				return 0, false, errStop
			}
			if p.aborted.Load() {
				return 0, false, err
			}
			if d.park(src) {
				return 0, false, errParked
			}
			continue // parking failed, or an abort or recycle came meanwhile: look again
		case err != nil:
			return 0, false, err
		case m == 0:
			return 0, true, nil
		case bp != nil:
			return p.writeChunk(d, dst, bp, m)
		}
		n, err := move(dst, src, m, &d.lr)
		return n, false, err
	}
}

// writeChunk writes the m bytes recv read into bp to dst and returns bp to
// the pool.
func (p *pair) writeChunk(d *dir, dst *net.TCPConn, bp *[]byte, m int) (int64, bool, error) {
	defer putBuf(bp)
	if d == &p.toUp {
		return p.writeUp((*bp)[:m])
	}
	w, err := dst.Write((*bp)[:m])
	return int64(w), false, err
}

// armWait sets src's read deadline for one wait. For upstreamToClient it is
// done under mu, as clientDone sets its interrupt, so neither overwrites the other.
func (p *pair) armWait(d *dir, src *net.TCPConn) error {
	if d != &p.toClient {
		src.SetReadDeadline(time.Now().Add(p.f.parkAfter))
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recycling {
		return errStop
	}
	src.SetReadDeadline(time.Now().Add(p.f.parkAfter))
	return nil
}

func (p *pair) clientToUpstream() {
	growRelayStack()
	d := &p.toUp
	for {
		n, eof, err := p.next(d, p.upstream.Load(), p.client)
		if err == errParked {
			return
		}
		p.count(&p.up, &p.f.bytesUp, n)
		if err != nil {
			p.fail(err)
		} else if eof {
			p.clientDone()
		} else {
			continue
		}
		d.finish()
		return
	}
}

// writeUp writes a chunk of the client's bytes to the upstream. While the
// pooled upstream has not spoken, the chunk is also kept for a replay, and a
// failed write is not an error: upstreamToClient sees the upstream die, dials
// a fresh one and replays what was kept, this chunk included.
func (p *pair) writeUp(b []byte) (int64, bool, error) {
	p.mu.Lock()
	if p.replayOn {
		if len(p.replay)+len(b) <= replayMax {
			p.replay = append(p.replay, b...)
		} else {
			p.replayOn, p.replay = false, nil
		}
	}
	covered := p.replayOn // the replay holds this chunk if this upstream dies
	up := p.upstream.Load()
	p.mu.Unlock()
	w, err := up.Write(b)
	if covered {
		return int64(len(b)), false, nil
	}
	return int64(w), false, err
}

func (p *pair) upstreamToClient() {
	growRelayStack()
	d := &p.toClient
	for {
		up := p.upstream.Load()
		n, eof, err := p.next(d, p.client, up)
		switch err {
		case errParked:
			return
		case errStop:
			p.stopRecycling()
			d.finish()
			return
		}
		if n == 0 && (eof || err != nil) && p.shouldRedial(err) {
			if p.redial(up) {
				continue
			}
			d.finish()
			return
		}
		if n > 0 {
			p.spoke()
		}
		p.count(&p.down, &p.f.bytesDown, n)
		switch {
		case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && n == 0 && p.isRecycling():
			p.stopRecycling() // a splice or a blocking read (not Linux) saw the interrupt
		case err != nil:
			p.fail(err)
		case eof:
			p.remoteDone()
		default:
			continue
		}
		d.finish()
		return
	}
}

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

func (p *pair) replaying() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replayOn
}

// spoke ends the replay window: the upstream answered, so it was alive.
func (p *pair) spoke() {
	p.mu.Lock()
	p.replayOn, p.replay = false, nil
	p.mu.Unlock()
}

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

// redial replaces a pooled upstream that died before its first byte with a
// fresh one and replays the client's first bytes on it. It runs once: a fresh
// dial's failure is the client's error, never retried.
func (p *pair) redial(old *net.TCPConn) bool {
	p.mu.Lock()
	p.redialed = true
	p.mu.Unlock()
	old.Close()
	c, d, err := p.f.pool.Dial(p.f.hardCtx)
	if err != nil {
		p.abort(ClosedByError, err)
		return false
	}
	// Swap and replay under mu: writeUp waits, so no newer chunk can
	// overtake the replay. abort does not need mu and closes c if it must.
	p.mu.Lock()
	defer p.mu.Unlock()
	p.upstream.Store(c)
	p.source, p.dial = pool.Cold, d
	replay := p.replay
	p.replayOn, p.replay = false, nil
	if p.aborted.Load() { // abort may have closed old, not c
		c.Close()
		return false
	}
	if len(replay) > 0 {
		c.SetWriteDeadline(time.Now().Add(p.f.dialTimeout()))
		_, err := c.Write(replay)
		c.SetWriteDeadline(time.Time{})
		if err != nil {
			p.fail(err) // takes endMu only, never mu
			return false
		}
	}
	if p.clientEOF && !p.recycling {
		c.CloseWrite()
	}
	return true
}

// clientDone: the client sent EOF. Pass it on (half-close), or with --reuse
// stop reading the upstream so it can go back to the pool unharmed.
func (p *pair) clientDone() {
	p.end(ClosedByClient)
	p.mu.Lock()
	p.clientEOF = true
	up := p.upstream.Load()
	p.recycling = p.f.cfg.Reuse
	if p.recycling {
		up.SetReadDeadline(aLongTimeAgo) // interrupts a wait in the netpoller
	}
	p.mu.Unlock()
	if p.f.cfg.Reuse {
		p.toClient.resume() // or a park: it sees recycling and stops
		return
	}
	if !p.toClient.done() { // else complete closes up right after us
		up.CloseWrite()
	}
}

func (p *pair) isRecycling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycling
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

// remoteDone: the upstream sent EOF; pass it on and let the client finish.
func (p *pair) remoteDone() {
	p.end(ClosedByRemote)
	if !p.toUp.done() { // else complete closes the client right after us
		p.client.CloseWrite()
	}
}

// fail ends the pair with an error, unless the error is only the echo of our
// own abort (a closed connection).
func (p *pair) fail(err error) {
	if p.aborted.Load() {
		return
	}
	p.abort(ClosedByError, err)
}

// abort makes reason final (the first abort wins over any clean end), closes
// both sockets, and resumes parked directions so they see it and finish.
func (p *pair) abort(reason string, err error) {
	p.endMu.Lock()
	if p.aborted.Load() {
		p.endMu.Unlock()
		return
	}
	p.aborted.Store(true)
	p.closedBy, p.err = reason, err
	p.endMu.Unlock()
	p.client.Close()
	if up := p.upstream.Load(); up != nil {
		up.Close()
	}
	p.toUp.resume()
	p.toClient.resume()
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
