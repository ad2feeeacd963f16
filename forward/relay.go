//go:build !linux || wpgoroutines

package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
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
	if d.p.eng.ended.Add(1) == 2 {
		d.p.f.complete(d.p)
	}
}

// start relays both directions: upstreamToClient in the calling goroutine,
// clientToUpstream in a new one. The pair completes when both have finished,
// from whichever goroutine finishes last.
func (p *pair) start() {
	p.startIdleTimer()
	go p.clientToUpstream()
	p.upstreamToClient()
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
		if d == &p.toClient && p.tracker != nil && p.isRecycling() {
			return 0, false, errStop
		}
		// The replay and the tracker need the bytes in hand; all else splices.
		peek := p.tracker == nil && (d == &p.toClient || !p.replaying())
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
	if p.tracker != nil {
		p.track(d == &p.toUp, (*bp)[:m])
	}
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
		if n == 0 && (eof || err != nil) && p.shouldRedial(err) && p.mayReplay(up) {
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

// waitBudget bounds the directions that wait in Go's netpoller at once, each
// holding a goroutine, for up to parkAfter; past it, a direction with nothing
// to read parks at once. The runtime never frees a goroutine's g (about 400
// bytes) once it was allocated, so a burst of N connections going idle
// together would otherwise cost 2N g's for the life of the process. 256 is
// above what a busy relay keeps waiting: 50 clients making short connections
// as fast as they can kept at most 185 on a loaded 2-core machine (a pair
// outlives its client until the upstream's close arrives). Each Forwarder
// copies it at New; tests change it.
var waitBudget int32 = 256

// overWaitBudget: waitBudget directions already wait in Go's netpoller. The
// bound is soft: directions that check at the same moment may all go on.
func (f *Forwarder) overWaitBudget() bool { return f.waiting.Load() >= f.waitBudget }

// A dir's key in the parker and the copier it runs are worked out from the
// pair, not stored: with 2000 idle pairs every byte of a pair counts, and a
// method value kept in a field would be one more allocation per direction.

// key is d's key in the parker: unique for the life of the Forwarder.
func (d *dir) key() uint64 {
	if d == &d.p.toUp {
		return 2 * d.p.id
	}
	return 2*d.p.id + 1
}

// run runs d's copier (clientToUpstream or upstreamToClient).
func (d *dir) run() {
	if d == &d.p.toUp {
		d.p.clientToUpstream()
	} else {
		d.p.upstreamToClient()
	}
}

//go:noinline
func growRelayStack() {
	var pad [5 << 9]byte
	touchStack(pad[:])
}

// engine is the goroutine relay's part of a Forwarder.
type engine struct {
	parker     parker // idle directions, without their goroutines
	parkAfter  time.Duration
	waitBudget int32
	waiting    atomic.Int32 // directions waiting in Go's netpoller (see waitBudget)
}

// startEngine starts the parker; if it fails, idle directions keep their
// goroutines.
func (f *Forwarder) startEngine() error {
	f.parkAfter, f.waitBudget = parkAfter, waitBudget
	f.parker.start()
	return nil
}

func (f *Forwarder) stopEngine() { f.parker.close() }

// unregister forgets p's directions in the parker once p completed.
func (f *Forwarder) unregister(p *pair, recycle bool) {
	f.parker.forget(p.toUp.key())
	f.parker.forget(p.toClient.key())
}

// wake lets parked directions see an abort and finish.
func (p *pair) wake() {
	p.toUp.resume()
	p.toClient.resume()
}

// pairEngine: the goroutine relay keeps most of its state in the directions.
type pairEngine struct {
	ended atomic.Int32 // directions finished
	// windowMu is held by writes in the replay window and by the replay
	// rule, which needs their count still (replay.go).
	windowMu sync.Mutex
	written  int // bytes of the replay window written to the current upstream
}

// sock is a connection as this engine relays it: Go's own.
type sock = net.TCPConn

func (f *Forwarder) accept() (*sock, error) { return f.ln.AcceptTCP() }

// withFD runs fn on c's fd, unless c is closed.
func withFD(c *sock, fn func(fd int)) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}

// resetExchange writes req to c and reads the reply until check has it
// whole, by deadline.
func resetExchange(c *sock, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(req); err != nil {
		return err
	}
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		reply = append(reply, buf[:n]...)
		if done, cerr := check(reply); done || cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
	}
}

// resetClose closes c with a reset (SO_LINGER 0) instead of a FIN, for an
// abort.
func resetClose(c *sock) {
	c.SetLinger(0)
	c.Close()
}

// remoteAddr is c's peer as its record shows it.
func remoteAddr(c *sock) string { return c.RemoteAddr().String() }

// startsInline: start, here, relays in the calling goroutine, so the accept
// loop never starts a pair itself.
const startsInline = false

// placePair: every pair relays in goroutines of its own here.
func (f *Forwarder) placePair(*pair) {}

// closeAccept: closing f.ln is all it takes here.
func (f *Forwarder) closeAccept() {}

func (f *Forwarder) dialRemote(ctx context.Context, remote string) (*sock, error) {
	growStack() // in a client's goroutine or the pool's background dialer
	d := net.Dialer{Timeout: f.dialTimeout(), KeepAlive: keepAlive(remote)}
	c, err := d.DialContext(ctx, "tcp", remote)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// complete runs once both directions of p are done: it recycles or closes
// the upstream; finish closes the client and records the connection.
func (f *Forwarder) complete(p *pair) {
	f.releaseUpstream(p)
	f.finish(p)
}

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

func (p *pair) isRecycling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycling
}
