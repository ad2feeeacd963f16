package forward

import (
	"context"
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

// aLongTimeAgo is a deadline in the past: it interrupts a parked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// pair is one client and its upstream while bytes flow between them. Two
// goroutines copy, one a direction (clientToUpstream, upstreamToClient), and
// the handler waits for both.
type pair struct {
	f       *Forwarder
	id      uint64
	client  *net.TCPConn
	started time.Time
	ctx     context.Context // canceled by abort: stops a dial in progress
	cancel  context.CancelFunc

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
	recycling   bool // --reuse: the client closed cleanly, we interrupted upstreamToClient
	interrupted bool // upstreamToClient stopped at our deadline, cleanly, between chunks
	source      pool.Source
	dial        time.Duration
}

// relay copies both directions until both have ended or the pair is
// aborted, then reports whether the upstream may be recycled.
func (p *pair) relay() (recyclable bool) {
	if d := p.f.cfg.IdleTimeout; d > 0 {
		p.last.Store(time.Now().UnixNano())
		t := time.AfterFunc(time.Duration(math.MaxInt64), p.checkIdle)
		p.idle.Store(t) // before it can fire: checkIdle re-arms it
		t.Reset(d)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.clientToUpstream(&wg)
	go p.upstreamToClient(&wg)
	wg.Wait()
	if t := p.idle.Load(); t != nil {
		t.Stop()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycling && p.interrupted && !p.aborted.Load()
}

func (p *pair) clientToUpstream(wg *sync.WaitGroup) {
	defer wg.Done()
	var lr io.LimitedReader
	var buf []byte
	for {
		q, err := waitReadable(p.client)
		if err != nil {
			p.fail(err)
			return
		}
		if q == 0 {
			p.clientDone()
			return
		}
		var n int64
		var eof bool
		if p.replaying() {
			if buf == nil {
				buf = make([]byte, 16<<10)
			}
			n, eof, err = p.copyFirstBytes(buf)
		} else {
			n, eof, err = move(p.upstream.Load(), p.client, q, &lr)
		}
		p.count(&p.up, &p.f.bytesUp, n)
		if err != nil {
			p.fail(err)
			return
		}
		if eof {
			p.clientDone()
			return
		}
	}
}

// copyFirstBytes moves one read of the client's bytes through user space,
// keeping them for a replay while the pooled upstream has not spoken. A write
// that fails then is not an error: upstreamToClient sees the upstream die,
// dials a fresh one and replays what was kept, this chunk included.
func (p *pair) copyFirstBytes(buf []byte) (int64, bool, error) {
	m, rerr := p.client.Read(buf)
	if m > 0 {
		p.mu.Lock()
		if p.replayOn {
			if len(p.replay)+m <= replayMax {
				p.replay = append(p.replay, buf[:m]...)
			} else {
				p.replayOn, p.replay = false, nil
			}
		}
		covered := p.replayOn // the replay holds this chunk if this upstream dies
		up := p.upstream.Load()
		p.mu.Unlock()
		if _, werr := up.Write(buf[:m]); werr != nil && !covered {
			return int64(m), false, werr
		}
	}
	if rerr == io.EOF {
		return int64(m), true, nil
	}
	return int64(m), false, rerr
}

func (p *pair) upstreamToClient(wg *sync.WaitGroup) {
	defer wg.Done()
	var lr io.LimitedReader
	for {
		up := p.upstream.Load()
		q, err := waitReadable(up)
		var n int64
		eof := err == nil && q == 0
		if err == nil && q > 0 {
			n, eof, err = move(p.client, up, q, &lr)
		}
		if n == 0 && (eof || err != nil) && p.shouldRedial(err) {
			if p.redial(up) {
				continue
			}
			return
		}
		if n > 0 {
			p.spoke()
		}
		p.count(&p.down, &p.f.bytesDown, n)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && n == 0 && p.stopRecycling() {
				return
			}
			p.fail(err)
			return
		}
		if eof {
			p.remoteDone()
			return
		}
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
	c, d, err := p.f.pool.Dial(p.ctx)
	if err != nil {
		p.abort(ClosedByError, err)
		return false
	}
	// Swap and replay under mu: copyFirstBytes waits, so no newer chunk can
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
	p.mu.Unlock()
	if p.f.cfg.Reuse {
		up.SetReadDeadline(aLongTimeAgo)
		return
	}
	up.CloseWrite()
}

// stopRecycling reports whether a deadline error is the interrupt clientDone
// caused, and notes that upstreamToClient stopped cleanly between chunks.
func (p *pair) stopRecycling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recycling {
		p.interrupted = true
	}
	return p.recycling
}

// remoteDone: the upstream sent EOF; pass it on and let the client finish.
func (p *pair) remoteDone() {
	p.end(ClosedByRemote)
	p.client.CloseWrite()
}

// fail ends the pair with an error, unless the error is only the echo of our
// own abort (a closed connection).
func (p *pair) fail(err error) {
	if p.aborted.Load() {
		return
	}
	p.abort(ClosedByError, err)
}

// abort makes reason final (the first abort wins over any clean end) and
// closes both sockets, which ends both copiers and any dial in progress.
func (p *pair) abort(reason string, err error) {
	p.endMu.Lock()
	if p.aborted.Load() {
		p.endMu.Unlock()
		return
	}
	p.aborted.Store(true)
	p.closedBy, p.err = reason, err
	p.endMu.Unlock()
	p.cancel()
	p.client.Close()
	if up := p.upstream.Load(); up != nil {
		up.Close()
	}
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
