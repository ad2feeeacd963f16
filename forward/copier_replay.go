package forward

import (
	"time"

	"github.com/warmport/warmport/pool"
)

// The copier's side of the replay window (the rule itself is replayrule.go).

// writeUp writes a chunk of the client's bytes to the upstream. While the
// pooled upstream has not spoken, the chunk is also kept for a replay, and a
// failed write is not an error: upstreamToClient sees the upstream die and
// applies the replay rule, which may dial a fresh one and replay what was
// kept, this chunk included. Those writes hold windowMu, so the rule sees
// how many bytes were written while none is being written.
func (p *pair) writeUp(b []byte) (int64, error) {
	cp := p.copyState()
	cp.windowMu.Lock()
	p.mu.Lock()
	if p.replayOn {
		if len(p.replay)+len(b) <= replayMax {
			p.replay = append(p.replay, b...)
		} else {
			p.replayOn, p.replay = false, nil
		}
	}
	covered := p.replayOn // the replay holds this chunk if this upstream dies
	up := cp.upstreamStream()
	p.mu.Unlock()
	if !covered {
		cp.windowMu.Unlock()
		w, err := up.Write(b)
		return int64(w), err
	}
	w, _ := up.Write(b)
	cp.written += w
	cp.windowMu.Unlock()
	return int64(len(b)), nil
}

// mayReplay applies the replay rule to old, a pooled upstream that failed
// in the replay window; it runs once per pair. When the rule says no, the
// window closes and the failure goes to the client as it is.
func (p *pair) mayReplay(old upConn) bool {
	p.mu.Lock()
	p.redialed = true
	p.mu.Unlock()
	cp := p.copyState()
	cp.windowMu.Lock()
	defer cp.windowMu.Unlock()
	s, isSock := old.(*sock)
	if isSock && replayable(s, cp.written) || !isSock && replayableStream(old, cp.written) {
		return true
	}
	p.mu.Lock()
	p.replayOn, p.replay = false, nil
	p.mu.Unlock()
	return false
}

// redial replaces a pooled upstream that the replay rule found never
// consumed the client's first bytes with a fresh one and replays them on it.
// It runs once: a fresh dial's failure is the client's error, never retried.
func (p *pair) redial(old upConn) bool {
	old.Close()
	c, d, err := p.f.replace(p)
	if err != nil {
		p.f.dialFailed(p, err)
		return false
	}
	u, owned, err := streamFor(c)
	if err != nil {
		c.Close()
		p.fail(err)
		return false
	}
	// Swap and replay under mu: writeUp waits, so no newer chunk can
	// overtake the replay. abort does not need mu and closes c if it must.
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setUpstream(c)
	p.copyState().setUpstream(u, owned)
	p.source, p.dial = pool.Cold, d
	replay := p.replay
	p.replayOn, p.replay = false, nil
	if p.aborted.Load() { // abort may have closed old, not c
		c.Close()
		return false
	}
	if len(replay) > 0 {
		u.SetWriteDeadline(time.Now().Add(p.f.dialTimeout()))
		_, err := u.Write(replay)
		u.SetWriteDeadline(time.Time{})
		if err != nil {
			p.fail(err) // takes endMu only, never mu
			return false
		}
	}
	if p.clientEOF && !p.recycling {
		p.copyState().upFinFailed.Store(u.CloseWrite() != nil) // see sentClientEOF
	}
	return true
}
