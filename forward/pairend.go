//go:build !linux || wpgoroutines

package forward

// How a pair ends: clean ends in each direction (half-close passed on, or
// --reuse's recycle), errors, aborts and the idle timeout.

// clientDone: the client sent EOF. Pass it on (half-close), or, when
// --reuse may recycle the upstream (reuse.go), stop reading it so it can go
// back to the pool unharmed.
func (p *pair) clientDone() {
	p.end(ClosedByClient)
	p.mu.Lock()
	p.clientEOF = true
	up := p.upstream.Load()
	p.recycling = p.mayRecycle()
	recycling := p.recycling
	if recycling {
		up.SetReadDeadline(aLongTimeAgo) // interrupts a wait in the netpoller
	}
	p.mu.Unlock()
	if recycling {
		p.toClient.resume() // or a park: it sees recycling and stops
		return
	}
	if !p.toClient.done() { // else complete closes up right after us
		up.CloseWrite()
	}
}

// remoteDone: the upstream sent EOF; pass it on and let the client finish.
func (p *pair) remoteDone() {
	p.end(ClosedByRemote)
	if !p.toUp.done() { // else complete closes the client right after us
		p.client.CloseWrite()
	}
}
