package forward

import "time"

// How a pair ends: clean ends in each direction (half-close passed on, or
// --reuse's recycle), errors, aborts and the idle timeout.

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
