package pool

// Rewarm is for a caller that learnt the path to the upstream is back (an
// SSH connection healed after a drop): it discards the idle connections its
// probe finds dead (counted stale), forgets that a background dial failed,
// and refills to Warm while clients keep coming (as the reaper does), so the
// next client finds a live warm connection instead of dead ones and a dial.
func (p *Pool[C]) Rewarm() {
	now := p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for _, id := range p.idle.Keys() {
		ic, _ := p.idle.Peek(id)
		if _, err := check(ic.c, false); err != nil {
			p.removeLocked(id, ic)
			p.stale.Add(1)
			p.doomed = append(p.doomed, ic.c)
		}
	}
	p.failed = false
	if p.lastGet.IsZero() || now.Sub(p.lastGet) < p.ttl {
		p.refillLocked()
	}
	p.unlock()
}
