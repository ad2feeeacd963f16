package forward

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warmport/warmport/session"
)

// The copier: a goroutine per direction over net.Conn. Each reads a chunk,
// writes it on, and at its source's EOF passes the EOF on as CloseWrite
// (half-close); the pair ends when both have ended. It waits in Read and
// Write, in Go's netpoller, so an idle pair holds two goroutines and their
// buffers: small ones (see getBuf). The pair's decisions are pair.go's; see
// engine.go.

// stream is what the copier relays over: a connection that can half-close.
// *net.TCPConn and *net.UnixConn are streams, and so are a TLS connection
// (CloseWrite sends close_notify) and an SSH channel (CloseWrite sends EOF).
type stream interface {
	net.Conn
	CloseWrite() error
}

// copyPair is the copier's state of a pair, and the pair's engine: the
// copier needs no state of its own beyond its pairs'.
type copyPair struct {
	mu               sync.Mutex // guards client, upstream, upOwned and dropped; never held while p.mu is taken
	client, upstream stream     // p's ends as streams (streamFor); upstream is swapped by a redial under p.mu too
	upOwned          bool       // upstream is the copier's own (a socket's duplicate), dropped with the pair
	dropped          bool       // the streams were let go (dropStreams): any set later is dropped at once

	ended         atomic.Int32 // directions that have ended
	toClientEnded atomic.Bool  // upstreamToClient has ended
	toUpEnded     atomic.Bool  // clientToUpstream has ended
	finToClient   atomic.Bool  // the client's write side is shut, or about to be (resetUnderEOF)

	// upFinMu is held while the client's EOF is passed to the upstream
	// (copierClientEOF), so sentClientEOF can wait for that CloseWrite's
	// outcome; upFinFailed: it failed, so no FIN of ours went out.
	upFinMu     sync.Mutex
	upFinFailed atomic.Bool

	// windowMu is held by writes in the replay window and by the replay
	// rule, which needs their count still (copier_replay.go).
	windowMu sync.Mutex
	written  int // bytes of the replay window written to the current upstream
}

// aLongTimeAgo is a deadline in the past: it ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// inline: relay runs the pair in the calling goroutine until it ends.
func (cp *copyPair) inline() bool { return false }

// relay runs upstreamToClient in the calling goroutine and clientToUpstream
// in a new one, and returns when the pair has ended.
func (cp *copyPair) relay(p *pair) {
	c, err := streamOf(p.client)
	var u stream
	var owned bool
	if err == nil {
		u, owned, err = streamFor(p.currentUpstream())
		if err != nil {
			dropStream(c)
		}
	}
	if err != nil {
		p.abort(session.ClosedByError, err)
		p.f.endPair(p)
		return
	}
	cp.mu.Lock()
	cp.client, cp.upstream, cp.upOwned = c, u, owned
	dropped := cp.dropped
	cp.mu.Unlock()
	if dropped { // an abort came first: its wake found no streams to drop
		dropStream(c)
		if owned {
			dropStream(u)
		}
	}
	p.startIdleTimer()
	go p.clientToUpstream()
	p.upstreamToClient()
}

// wake: p was aborted, and its sockets reset. Blocked Reads and Writes
// return once their streams are closed too.
func (cp *copyPair) wake(*pair) { cp.dropStreams() }

// detach: the copier's streams were dropped when the pair ended.
func (cp *copyPair) detach(*pair) {}

// dropStreams lets both streams go (dropStream), once.
func (cp *copyPair) dropStreams() {
	cp.mu.Lock()
	c, u, owned, dropped := cp.client, cp.upstream, cp.upOwned, cp.dropped
	cp.dropped = true
	cp.mu.Unlock()
	if dropped {
		return
	}
	if c != nil {
		dropStream(c)
	}
	if u != nil && owned {
		dropStream(u)
	}
}

// upstreamStream is the current upstream as a stream.
func (cp *copyPair) upstreamStream() stream {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.upstream
}

// setUpstream puts u in place of the upstream stream (a redial's), letting
// the old one go; if the streams were dropped meanwhile, u is dropped too.
func (cp *copyPair) setUpstream(u stream, owned bool) {
	cp.mu.Lock()
	old, oldOwned, dropped := cp.upstream, cp.upOwned, cp.dropped
	cp.upstream, cp.upOwned = u, owned
	cp.mu.Unlock()
	if old != nil && oldOwned && !dropped {
		dropStream(old)
	}
	if dropped && owned {
		dropStream(u)
	}
}

// streamFor is up as the copier relays it: a socket through streamOf
// (owned: the copier drops it), a Stream as it is (its pair closes it).
func streamFor(up upConn) (u stream, owned bool, err error) {
	if s, ok := up.(*sock); ok {
		u, err = streamOf(s)
		return u, true, err
	}
	return up.(Stream), false, nil
}

// currentUpstream is p's upstream, whichever kind it is.
func (p *pair) currentUpstream() upConn {
	if s := p.upStream.Load(); s != nil {
		return *s
	}
	return p.upstream.Load()
}

// copyState is the copier's state of p, a pair the copier relays.
func (p *pair) copyState() *copyPair { return p.engine.(*copyPair) }

// endDirection: one direction has ended; the second to end ends the pair.
func (p *pair) endDirection(flag *atomic.Bool) {
	flag.Store(true)
	if cp := p.copyState(); cp.ended.Add(1) == 2 {
		cp.dropStreams()
		p.f.endPair(p)
	}
}

func (p *pair) clientToUpstream() {
	cp := p.copyState()
	large := false
	for {
		bp := getBuf(large)
		n, err := cp.client.Read(*bp)
		large = n >= smallBufSize
		if n > 0 {
			if p.tracker != nil {
				p.track(true, (*bp)[:n])
			}
			w, werr := p.writeUp((*bp)[:n])
			p.count(&p.bytesUp, &p.f.bytesUp, w)
			if werr != nil {
				putBuf(bp)
				p.fail(werr)
				break
			}
		}
		putBuf(bp)
		if err == io.EOF {
			if resetUnderEOF(fdOf(p.client), cp.finToClient.Load) {
				p.fail(errResetTaken)
				break
			}
			p.copierClientEOF()
			break
		}
		if err != nil {
			p.fail(err)
			break
		}
	}
	p.endDirection(&cp.toUpEnded)
}

func (p *pair) upstreamToClient() {
	cp := p.copyState()
	large := false
	for {
		old, up := p.currentUpstream(), cp.upstreamStream()
		bp := getBuf(large)
		n, err := up.Read(*bp)
		large = n >= smallBufSize
		if n > 0 {
			p.spoke()
			if p.tracker != nil {
				p.track(false, (*bp)[:n])
			}
			w, werr := cp.client.Write((*bp)[:n])
			putBuf(bp)
			p.count(&p.bytesDown, &p.f.bytesDown, int64(w))
			if werr != nil {
				p.fail(werr)
				break
			}
			if err == nil {
				continue
			}
		} else {
			putBuf(bp)
		}
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && p.isRecycling() {
			p.upstreamReaderStopped() // clientEnded's interrupt
			break
		}
		var cause error // the failure the replay rule weighs: nil for a clean EOF
		switch {
		case err != io.EOF:
			cause = err
		case resetUnderEOF(fdOf(old), p.sentClientEOF):
			cause = errResetTaken
		}
		if n == 0 && p.shouldRedial(cause) && p.mayReplay(old) {
			if p.redial(old) {
				continue
			}
			break
		}
		if cause != nil {
			p.fail(cause)
		} else {
			p.upstreamEnded()
			cp.finToClient.Store(true)
			if !cp.toUpEnded.Load() && !p.aborted.Load() { // else the pair's end, or the abort's reset, ends the client right after us (see resetUnderEOF)
				cp.client.CloseWrite()
			}
		}
		break
	}
	p.endDirection(&cp.toClientEnded)
}

// copierClientEOF: the client sent EOF and every byte before it is
// through. Pass it on, or, when the upstream is to be recycled, interrupt
// upstreamToClient's Read so it stops between chunks. The upstream is taken
// under p.mu: a redial swaps it under p.mu, before this or seeing clientEOF.
func (p *pair) copierClientEOF() {
	cp := p.copyState()
	cp.upFinMu.Lock()
	defer cp.upFinMu.Unlock()
	var up stream
	recycling := p.clientEnded(func(recycling bool) {
		up = p.copyState().upstreamStream()
		if recycling {
			up.SetReadDeadline(aLongTimeAgo)
		}
	})
	if !recycling && !cp.toClientEnded.Load() && !p.aborted.Load() { // else the pair's end, or the abort's reset, ends the upstream right after us
		// A CloseWrite that fails (TLS: the close_notify's write took the
		// upstream's reset) sent no FIN: the EOF the upstream's reader then
		// finds is that reset's (sentClientEOF).
		cp.upFinFailed.Store(up.CloseWrite() != nil)
	}
}

// errResetTaken is the peer's reset that another call on the socket took
// and a read then found as EOF (resetUnderEOF).
var errResetTaken = os.NewSyscallError("read", syscall.ECONNRESET)

// resetUnderEOF tells whether the EOF a direction read from a socket of the
// kernel's (onFD lends its fd; nil: none) hides the peer's reset. The kernel
// reports a reset once, to whichever call on the socket comes first, and
// reads after it find EOF; the copier calls on each socket from two
// goroutines (one direction reads it while the other writes it), so when a
// write takes the reset, the read finds an EOF that would pass on as a clean
// end before the write's failure aborts the pair. A FIN never closes a TCP
// connection whose side of ours is still open: the kernel holding it closed
// then means a reset (or a timeout). finSent tells whether we shut our side;
// it is asked after the kernel and set before the shutdown, so a close our
// own FIN completed is never taken for a reset.
//
// A socket the pair's abort closed tells nothing, and its read may end in
// EOF too; so an EOF passes on only if, asked after this, the pair was not
// aborted (aborted is set before any socket is closed). The copier's
// streams of our sockets are duplicates (streamOf): until the abort's wake
// drops them, a shutdown through one still sends a FIN, ahead of the
// abort's reset.
func resetUnderEOF(onFD func(func(fd int)), finSent func() bool) bool {
	if onFD == nil {
		return false
	}
	closed := false
	onFD(func(fd int) { closed = closedByKernel(fd) })
	return closed && !finSent()
}

// sentClientEOF tells whether the client's EOF went to the upstream as our
// FIN: it waits for a CloseWrite in progress (copierClientEOF), and one that
// failed sent none.
func (p *pair) sentClientEOF() bool {
	cp := p.copyState()
	cp.upFinMu.Lock() // waits for a CloseWrite in progress
	cp.upFinMu.Unlock()
	p.mu.Lock()
	eof := p.clientEOF
	p.mu.Unlock()
	return eof && !cp.upFinFailed.Load()
}

// smallBufSize is the buffer a direction reads with while its source
// sends little: an idle pair waits in Read with two of these, not two of
// bufSize.
const smallBufSize = 4 << 10

var smallBufs, largeBufs = bufPool(smallBufSize), bufPool(bufSize)

func bufPool(size int) *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
}

// bufsOut, if set (tests only, before any forwarder starts), sees every
// buffer taken (+1) and given back (-1).
var bufsOut func(delta int)

// getBuf returns a buffer for a direction's next Read: a large one (bufSize)
// when the last Read returned at least a small one's worth, as data flowing
// does, else a small one, which a Read that may wait long holds.
func getBuf(large bool) *[]byte {
	if bufsOut != nil {
		bufsOut(1)
	}
	if large {
		return largeBufs.Get().(*[]byte)
	}
	return smallBufs.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if bufsOut != nil {
		bufsOut(-1)
	}
	if len(*b) == bufSize {
		largeBufs.Put(b)
		return
	}
	smallBufs.Put(b)
}

func (p *pair) replaying() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replayOn
}

// spoke closes the replay window: the upstream answered, so it was alive.
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
