package pool

// Flush closes every idle connection and starts dialing Warm fresh ones, for
// a caller whose dial function now reaches a better upstream than the one
// the idle connections lead to (a failover candidate that came back).
// Connections handed out are untouched. Flushed connections count in no
// Stats counter: they were neither found dead nor pushed out by a bound.
func (p *Pool[C]) Flush() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for _, id := range p.idle.Keys() {
		ic, _ := p.idle.Peek(id)
		p.removeLocked(id, ic)
		p.doomed = append(p.doomed, ic.c)
	}
	p.refillLocked()
	p.unlock()
}
