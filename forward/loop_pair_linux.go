package forward

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/forward/internal/poller"
	"github.com/warmport/warmport/forward/internal/rawsock"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// dir is one direction of a pair as the loop relays it: the loop
// goroutine's only. Bytes go src -> pipe -> dst by splice; only the client's
// first bytes to a warm upstream pass through user space, kept for a replay.
type dir struct {
	p        *pair
	pend     []byte // bytes read through user space, not yet written to dst
	pipe     poller.Pipe
	inPipe   int32 // bytes in the pipe, not yet written to dst (at most poller.PipeSize)
	hasPipe  bool  // a direction holds a pipe only while it moves bytes
	lent     bool  // pend is in the loop's buffer: copy it before the loop reads again
	readable bool  // src signalled input and was not read to EAGAIN since
	hup      bool  // src's peer signalled its end: a short read may not be the last one
	eof      bool  // src reached EOF; dst gets it once the bytes before it are through
	ended    bool  // d has ended: its EOF passed on, or stopped for a recycle, or the pair aborted
}

// loopPair is the loop's state of a pair. Every idle pair holds one inside
// its pair, so what only a redial needs is behind a pointer.
type loopPair struct {
	toUp, toClient dir
	written        int            // bytes of p.replay written to the current upstream
	onLoop         bool           // the loop relays it: from add to endIfBoth; under the shard's mu
	redialing      bool           // a fresh upstream is being dialed; both directions wait
	redialResult   *redialOutcome // the redial's outcome once it is known; under p.mu
}

// redialOutcome is what a redial's goroutine hands the loop.
type redialOutcome struct {
	declined bool  // the replay rule said no: the old upstream's failure goes on
	cause    error // that failure: nil for a clean EOF
	conn     *sock
	dur      time.Duration
	err      error
}

// inline: relay only registers the pair, so the accept loop may call it.
func (l *loop) inline() bool { return true }

// relay hands p to the loop, which relays it from the first event on.
func (l *loop) relay(p *pair) {
	p.lp.toUp.p, p.lp.toClient.p = p, p
	p.startIdleTimer()
	if err := l.add(p); err != nil {
		p.abort(session.ClosedByError, err)
	}
	if p.aborted.Load() { // an abort before add did not reach the loop: it ran no news for p
		l.post(p)
	}
}

// wake tells the loop that p has news (an abort): it runs p's end.
func (l *loop) wake(p *pair) { l.post(p) }

// detach takes a recycled upstream out of the epoll set before it goes
// back to the pool; a closed socket leaves the set by itself.
func (l *loop) detach(p *pair) {
	p.upstream.Load().Do(l.pl.Del)
}

// event: one of p's sockets signalled.
func (l *loop) event(p *pair, upstream bool, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		d := &p.lp.toUp
		if upstream {
			d = &p.lp.toClient
		}
		d.readable = true
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			d.hup = true
		}
	}
	l.step(&p.lp.toUp)
	l.step(&p.lp.toClient)
}

// step moves what d can move now: first what is in flight, then what src
// has, until src or dst would block, src ends, or the pair does.
func (l *loop) step(d *dir) {
	p := d.p
	toUp := d == &p.lp.toUp
	for !d.ended && !p.aborted.Load() && !p.lp.redialing {
		dst, src := p.client, p.upstream.Load()
		if toUp {
			dst, src = src, p.client
		}
		// What is in flight goes first: a pipe, the replay window, bytes
		// read through user space.
		if d.inPipe > 0 {
			n, err := spliceOut(d, dst)
			if n > 0 {
				d.inPipe -= int32(n)
				l.moved(d, n)
			}
			if err == unix.EAGAIN {
				return // dst's EPOLLOUT brings us back
			}
			if err != nil {
				l.failed(p, toUp, err)
				return
			}
			continue
		}
		if out := l.unwritten(d); len(out) > 0 {
			n, err := writeFD(dst, out)
			l.wrote(d, n)
			if err == unix.EAGAIN {
				if d.lent { // the loop's buffer is the next read's: keep our own copy
					d.pend, d.lent = append([]byte(nil), d.pend...), false
				}
				return
			}
			if err != nil {
				l.failed(p, toUp, err)
				return
			}
			continue
		}
		if d.hasPipe {
			l.pipes.Put(d.pipe, true)
			d.hasPipe = false
		}
		if d.eof {
			l.sourceEnded(d)
			return
		}
		if !toUp && p.recycling {
			l.interrupt(p)
			return
		}
		if !d.readable {
			return
		}
		n, short, err := l.read(d, src)
		switch {
		case short && !d.hup:
			// Less than asked for: src is drained. Bytes that come later
			// signal again (edge-triggered), so no read needs to find
			// EAGAIN. Once the peer's end was signalled, that signal is
			// spent: read on to the EOF.
			d.readable = false
		case err == unix.EAGAIN:
			d.readable = false
			if d.hasPipe {
				l.pipes.Put(d.pipe, true) // an idle direction holds no pipe
				d.hasPipe = false
			}
			return
		case err != nil:
			l.failed(p, !toUp, err)
			return
		case n == 0:
			d.eof = true
		}
	}
}

// read takes what src has: into the replay window while it is open (toUp),
// otherwise spliced into d's pipe. n 0 is EOF; short says the socket's queue
// is empty: a read(2) of fewer bytes than asked for, or a splice of fewer
// bytes than the pipe has buffers.
func (l *loop) read(d *dir, src *sock) (n int, short bool, err error) {
	p := d.p
	if d == &p.lp.toUp && p.replayOn {
		n, err := readFD(src, l.buf)
		if n > 0 {
			if p.tracker != nil {
				p.track(true, l.buf[:n])
			}
			l.keep(p, l.buf[:n])
		}
		return n, n > 0 && n < len(l.buf), err
	}
	if p.tracker != nil {
		return l.readTracked(d, src)
	}
	if !d.hasPipe {
		pp, err := l.pipes.Get()
		if err != nil {
			return 0, false, err
		}
		d.pipe, d.hasPipe = pp, true
	}
	n, err = spliceIn(src, d)
	if n > 0 {
		d.inPipe = int32(n)
		if d == &p.lp.toClient {
			l.spoke(p)
		}
	}
	// A splice stops early when the pipe runs out of buffers, which many
	// small segments do long before its byte capacity; each buffer holds at
	// least a byte, so fewer bytes than buffers means the socket ran dry.
	return n, n > 0 && n < int(d.pipe.Slots), err
}

// readTracked reads what src has into the loop's buffer for a --reuse pair:
// the tracker sees it, then step writes it on as d's pending bytes (lent:
// copied only if dst cannot take it all at once). Counted as sent now: it
// reaches dst or the pair fails.
func (l *loop) readTracked(d *dir, src *sock) (n int, short bool, err error) {
	p := d.p
	n, err = readFD(src, l.buf)
	if n > 0 {
		b := l.buf[:n]
		toUp := d == &p.lp.toUp
		p.track(toUp, b)
		if toUp {
			p.count(&p.bytesUp, &p.f.bytesUp, int64(n))
		} else {
			p.count(&p.bytesDown, &p.f.bytesDown, int64(n))
			l.spoke(p)
		}
		d.pend, d.lent = b, true
	}
	return n, n > 0 && n < len(l.buf), err
}

// keep adds the client's bytes to the replay window, or closes the window
// when they do not fit: what was not written yet goes on as pending bytes.
// They count as sent now: they reach the upstream or the pair fails.
func (l *loop) keep(p *pair, b []byte) {
	p.count(&p.bytesUp, &p.f.bytesUp, int64(len(b)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.replay)+len(b) <= replayMax {
		p.replay = append(p.replay, b...)
		return
	}
	p.lp.toUp.pend = append(append([]byte(nil), p.replay[p.lp.written:]...), b...)
	p.replayOn, p.replay = false, nil
}

// spoke closes the replay window: the upstream answered, so it was alive.
// Kept bytes not written yet go on as pending bytes.
func (l *loop) spoke(p *pair) {
	if !p.replayOn {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lp.toUp.pend = append(p.lp.toUp.pend, p.replay[p.lp.written:]...)
	p.replayOn, p.replay = false, nil
}

// unwritten is what d has read through user space and not written yet.
func (l *loop) unwritten(d *dir) []byte {
	if p := d.p; d == &p.lp.toUp && p.replayOn {
		return p.replay[p.lp.written:]
	}
	return d.pend
}

// wrote notes n bytes of unwritten(d) written (counted when kept).
func (l *loop) wrote(d *dir, n int) {
	if p := d.p; d == &p.lp.toUp && p.replayOn {
		p.lp.written += n
		return
	}
	d.pend = d.pend[n:]
	if len(d.pend) == 0 {
		d.pend, d.lent = nil, false
	}
}

// moved counts n bytes that reached d's destination.
func (l *loop) moved(d *dir, n int) {
	p := d.p
	if d == &p.lp.toUp {
		p.count(&p.bytesUp, &p.f.bytesUp, int64(n))
	} else {
		p.count(&p.bytesDown, &p.f.bytesDown, int64(n))
	}
}

// sourceEnded: d's source reached EOF and everything before it is through. Pass
// the EOF on (half-close), or with --reuse stop reading the upstream so it
// can go back to the pool unharmed. When the other direction has ended
// already, endIfBoth closes both sockets, and the close sends the FIN.
func (l *loop) sourceEnded(d *dir) {
	p := d.p
	if d == &p.lp.toClient {
		if p.shouldRedial(nil) {
			l.redial(p, nil)
			return
		}
		p.upstreamEnded()
		d.ended = true
		if !p.lp.toUp.ended {
			p.client.CloseWrite()
		}
		l.endIfBoth(p)
		return
	}
	recycling := p.clientEnded(nil)
	d.ended = true
	if recycling && !p.lp.toClient.ended {
		l.step(&p.lp.toClient) // it stops once nothing is in flight
		return
	}
	if !p.lp.toClient.ended {
		p.upstream.Load().CloseWrite()
	}
	l.endIfBoth(p)
}

// interrupt stops the upstream->client direction between chunks, for the
// recycle the client's clean close asked for.
func (l *loop) interrupt(p *pair) {
	p.upstreamReaderStopped()
	p.lp.toClient.ended = true
	l.endIfBoth(p)
}

// failed: a read or write of p's failed; upstream says it was on the
// upstream's socket (reading toClient's source, writing toUp's destination).
// An upstream that died before its first byte, while the client's first
// bytes are kept in the replay window, may be replaced (redial).
func (l *loop) failed(p *pair, upstream bool, err error) {
	if upstream && p.shouldRedial(err) {
		l.redial(p, err)
		return
	}
	p.fail(err)
}

// redial applies the replay rule (replayrule.go) to p's failed upstream and,
// if it allows, dials a fresh one, in a goroutine (the rule may wait for the
// kernel, dials block); both directions wait meanwhile. The loop takes the
// outcome when the goroutine posts it (news). cause is the failure, nil for
// a clean EOF.
func (l *loop) redial(p *pair, cause error) {
	p.mu.Lock()
	p.redialed = true
	p.mu.Unlock()
	p.lp.redialing = true
	old, written := p.upstream.Load(), p.lp.written
	go func() {
		if !replayable(old, written) {
			p.mu.Lock()
			p.lp.redialResult = &redialOutcome{declined: true, cause: cause}
			p.mu.Unlock()
			l.post(p)
			return
		}
		old.Close()
		up, d, err := p.f.replace(p)
		c, _ := up.(*sock) // the loop relays sockets only
		p.mu.Lock()
		p.lp.redialResult = &redialOutcome{conn: c, dur: d, err: err}
		p.mu.Unlock()
		l.post(p)
	}()
}

// news runs a post for p: an abort, or a redial's outcome.
func (l *loop) news(p *pair) {
	if p.lp.redialing {
		p.mu.Lock()
		o := p.lp.redialResult
		p.lp.redialResult = nil
		p.mu.Unlock()
		if o == nil {
			return // an abort during the dial: the dial's post comes next
		}
		p.lp.redialing = false
		c, d, err, declined, cause := o.conn, o.dur, o.err, o.declined, o.cause
		switch {
		case p.aborted.Load():
			if c != nil {
				c.Close()
			}
		case declined && cause != nil:
			p.fail(cause)
		case declined:
			// The upstream's clean EOF goes to the client; kept bytes not
			// written yet go on to it, as they would on a direct connection.
			l.spoke(p)
			l.step(&p.lp.toUp)
			l.step(&p.lp.toClient)
			return
		case err != nil:
			p.f.dialFailed(p, err)
		default:
			l.swap(p, c, d)
			return
		}
	}
	if p.aborted.Load() {
		p.lp.toUp.ended, p.lp.toClient.ended = true, true
		l.endIfBoth(p)
	}
}

// swap puts a fresh upstream in place of one that died before its first
// byte and replays the client's first bytes on it, then its EOF if it came.
func (l *loop) swap(p *pair, c *sock, d time.Duration) {
	p.mu.Lock()
	p.upstream.Store(c)
	p.source, p.dial = pool.Cold, d
	replay := p.replay
	p.replayOn, p.replay = false, nil
	p.mu.Unlock()
	if p.aborted.Load() { // abort may have closed the old upstream, not c
		c.Close()
		l.news(p)
		return
	}
	p.lp.toUp.pend, p.lp.written = replay, 0
	p.lp.toClient.readable, p.lp.toClient.eof, p.lp.toClient.hup = false, false, false
	if p.lp.toUp.ended { // the client's EOF came: pass it on after the replay
		p.lp.toUp.ended, p.lp.toUp.eof = false, true
	}
	if err := l.addSocket(p, true); err != nil {
		p.abort(session.ClosedByError, err)
		return
	}
	l.step(&p.lp.toUp)
	l.step(&p.lp.toClient)
}

// endIfBoth ends p once both directions have ended: its upstream is
// recycled or closed, its client closed (release, here on the loop), and
// the record goes to the recorder.
func (l *loop) endIfBoth(p *pair) {
	if !p.lp.toUp.ended || !p.lp.toClient.ended {
		return
	}
	l.shard.mu.Lock()
	live := p.lp.onLoop
	p.lp.onLoop = false
	l.shard.mu.Unlock()
	if !live {
		return
	}
	for _, d := range []*dir{&p.lp.toUp, &p.lp.toClient} {
		if d.hasPipe {
			l.pipes.Put(d.pipe, d.inPipe == 0)
			d.hasPipe = false
		}
	}
	p.f.release(p)
	if p.f.cfg.OnClose == nil {
		p.f.record(p) // it never blocks then: no need to wake the recorder
		return
	}
	l.recorder.push(p)
}

// The relay's syscalls, each made under the socket's lock (rawsock.Socket.IO).

func spliceIn(src *sock, d *dir) (int, error) {
	return src.IO(func(fd int) (int, error) { return rawsock.Splice(fd, int(d.pipe.W), poller.PipeSize) })
}

func spliceOut(d *dir, dst *sock) (int, error) {
	return dst.IO(func(fd int) (int, error) { return rawsock.Splice(int(d.pipe.R), fd, int(d.inPipe)) })
}

func readFD(c *sock, b []byte) (int, error) {
	return c.IO(func(fd int) (int, error) { return rawsock.Read(fd, b) })
}

func writeFD(c *sock, b []byte) (int, error) {
	return c.IO(func(fd int) (int, error) { return rawsock.Write(fd, b) })
}
