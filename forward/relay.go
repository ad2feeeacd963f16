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
