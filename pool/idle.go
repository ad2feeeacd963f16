package pool

import (
	"math/rand/v2"
	"time"
)

// idleConn is one connection in the idle set.
type idleConn[C Conn] struct {
	c        C
	src      Source    // Warm or Reused, as Get will report it
	deadline time.Time // closed, never handed out, from then on

	// taken is set, under Pool.mu, by whoever removes the entry from the
	// LRU on purpose (a borrow, the reaper, Close): the LRU's eviction
	// callback fires on Remove too, and must then leave the connection to
	// its new owner.
	taken bool
}

// lifetime returns a new idle connection's time to live: a random duration
// in [0.85*TTL, TTL], so connections dialed together do not expire together.
func (p *Pool[C]) lifetime() time.Duration {
	return p.ttl - rand.N(p.ttl*15/100+1)
}

// unlock releases p.mu, then closes the connections queued in p.doomed while
// it was held, so that no socket is closed under the lock.
func (p *Pool[C]) unlock() {
	doomed := p.doomed
	p.doomed = nil
	p.mu.Unlock()
	for _, c := range doomed {
		p.letGo(c)
	}
}

// evictLocked is the LRU's eviction callback. It runs under p.mu, from inside
// the LRU's methods; it only queues the connection for unlock to close.
func (p *Pool[C]) evictLocked(_ uint64, ic *idleConn[C]) {
	if ic.taken {
		return // removed on purpose; the remover owns the connection
	}
	ic.taken = true
	p.evicted.Add(1)
	p.doomed = append(p.doomed, ic.c)
}

// removeLocked takes the entry id out of the idle set; the caller owns ic.c.
func (p *Pool[C]) removeLocked(id uint64, ic *idleConn[C]) {
	ic.taken = true
	p.idle.Remove(id)
}

// addLocked puts c in the idle set as its newest entry, evicting the least
// recently used one if the set is full, and tells the reaper if c's deadline
// comes before the one it waits for.
func (p *Pool[C]) addLocked(c C, src Source, now time.Time) {
	p.nextID++
	ic := &idleConn[C]{c: c, src: src, deadline: now.Add(p.lifetime())}
	p.idle.Add(p.nextID, ic)
	if p.wake != nil && (p.reapAt.IsZero() || ic.deadline.Before(p.reapAt)) {
		p.reapAt = ic.deadline
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// take removes and returns the newest idle connection whose deadline has not
// passed, closing expired ones on the way; nil if none is left. It records
// that a Get came, which also ends a pause after a failed background dial.
func (p *Pool[C]) take(now time.Time) *idleConn[C] {
	p.mu.Lock()
	p.lastGet = now
	p.failed = false
	keys := p.idle.Keys() // oldest to newest
	var found *idleConn[C]
	for i := len(keys) - 1; i >= 0; i-- {
		ic, _ := p.idle.Peek(keys[i])
		p.removeLocked(keys[i], ic)
		if now.Before(ic.deadline) {
			found = ic
			break
		}
		p.expired.Add(1)
		p.doomed = append(p.doomed, ic.c)
	}
	p.unlock()
	return found
}

// refill starts background dials up to Warm; see refillLocked.
func (p *Pool[C]) refill() {
	p.mu.Lock()
	p.refillLocked()
	p.mu.Unlock()
}

// refillLocked starts one background dial for each connection missing to
// have Warm idle or being dialed: a waiting dialer takes it, or a new one
// starts. It does nothing after Close, or after a background dial failed
// (until the next Get clears p.failed).
func (p *Pool[C]) refillLocked() {
	if p.closed || p.failed {
		return
	}
	for n := p.idle.Len() + p.dialing; n < p.warm; n++ {
		p.dialing++
		if p.waiting > 0 {
			p.waiting--
			p.work <- struct{}{} // never blocks: there are at most Warm dialers
			continue
		}
		p.wg.Add(1)
		go p.dialIdle()
	}
}

// dialerLinger is how long a background dialer with nothing to dial waits
// for more before it exits.
const dialerLinger = 5 * time.Second

// dialIdle dials connections for the idle set, with the pool's context, for
// as long as some are missing, then waits a while for more (waitWork): under
// a steady load of borrows, one dialer that stays costs less than a
// goroutine per refill, whose stack grows from scratch each time.
// refillLocked counted it in p.dialing and p.wg.
func (p *Pool[C]) dialIdle() {
	defer p.wg.Done()
	var linger *time.Timer
	for {
		c, _, err := p.dialOnce(p.ctx)
		p.mu.Lock()
		switch {
		case err != nil:
			p.failed = true
		case p.closed:
			p.doomed = append(p.doomed, c)
		default:
			p.addLocked(c, Warm, p.now())
		}
		// Still short, counting the other dials in flight: go on, and
		// stay counted in p.dialing.
		again := !p.closed && !p.failed && p.idle.Len()+p.dialing-1 < p.warm
		stay := !again && !p.closed
		if !again {
			p.dialing--
		}
		if stay {
			p.waiting++
		}
		p.unlock()
		if p.onDial != nil && p.ctx.Err() == nil {
			p.onDial(err)
		}
		if !again && !(stay && p.waitWork(&linger)) {
			return
		}
	}
}

// waitWork waits, counted in p.waiting, until refillLocked hands this dialer
// a dial (true), or dialerLinger passes or the pool closes first (false).
func (p *Pool[C]) waitWork(linger **time.Timer) bool {
	if *linger == nil {
		*linger = time.NewTimer(dialerLinger)
	} else {
		(*linger).Reset(dialerLinger)
	}
	select {
	case <-p.work:
		return true
	case <-(*linger).C:
	case <-p.ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.work: // handed a dial as it gave up: the dial is its own
		if !p.closed {
			return true
		}
		p.dialing--
	default:
		p.waiting--
	}
	return false
}

// reaper closes idle connections when their deadline passes, on the system's
// clock (Config.Now is nil). It sleeps on a timer set to the earliest
// deadline, and wakes early when addLocked brings an earlier one. It exits
// when the pool's context is canceled.
func (p *Pool[C]) reaper() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := p.reap(time.Now()); next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(next))
		}
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// Reap closes the idle connections whose deadline has passed by the pool's
// clock, as the reaper does when a deadline comes: if a Get came within the
// last TTL, it starts dials to replace them (up to Warm); otherwise the pool
// drains, to be warmed up again by the next Get. It is for a pool on the
// caller's clock (Config.Now), which has no reaper: call it after moving
// that clock. On the system's clock the reaper calls it on time.
func (p *Pool[C]) Reap() { p.reap(p.now()) }

// reap is Reap at now. It returns the earliest remaining deadline, zero if
// the set is empty.
func (p *Pool[C]) reap(now time.Time) (next time.Time) {
	p.mu.Lock()
	n := 0
	for _, id := range p.idle.Keys() {
		ic, _ := p.idle.Peek(id)
		if now.Before(ic.deadline) {
			if next.IsZero() || ic.deadline.Before(next) {
				next = ic.deadline
			}
			continue
		}
		p.removeLocked(id, ic)
		p.doomed = append(p.doomed, ic.c)
		n++
	}
	if n > 0 {
		p.expired.Add(uint64(n))
		if !p.lastGet.IsZero() && now.Sub(p.lastGet) < p.ttl {
			p.refillLocked()
		}
	}
	p.reapAt = next
	p.unlock()
	return next
}
