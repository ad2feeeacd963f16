//go:build !linux || wpgoroutines

package forward

import (
	"net"
	"time"

	"github.com/warmport/warmport/pool"
)

// writeUp writes a chunk of the client's bytes to the upstream. While the
// pooled upstream has not spoken, the chunk is also kept for a replay, and a
// failed write is not an error: upstreamToClient sees the upstream die and
// applies the replay rule (replayrule.go), which may dial a fresh one and
// replay what was kept, this chunk included. Those writes hold windowMu, so
// the rule sees how many bytes were written while none is being written.
func (p *pair) writeUp(b []byte) (int64, bool, error) {
	p.eng.windowMu.Lock()
	p.mu.Lock()
	if p.replayOn {
		if len(p.replay)+len(b) <= replayMax {
			p.replay = append(p.replay, b...)
		} else {
			p.replayOn, p.replay = false, nil
		}
	}
	covered := p.replayOn // the replay holds this chunk if this upstream dies
	up := p.upstream.Load()
	p.mu.Unlock()
	if !covered {
		p.eng.windowMu.Unlock()
		w, err := up.Write(b)
		return int64(w), false, err
	}
	w, _ := up.Write(b)
	p.eng.written += w
	p.eng.windowMu.Unlock()
	return int64(len(b)), false, nil
}

// mayReplay applies the replay rule to old, a pooled upstream that failed
// in the replay window; it runs once per pair. When the rule says no, the
// window closes and the failure goes to the client as it is.
func (p *pair) mayReplay(old *net.TCPConn) bool {
	p.mu.Lock()
	p.redialed = true
	p.mu.Unlock()
	p.eng.windowMu.Lock()
	defer p.eng.windowMu.Unlock()
	if replayable(old, p.eng.written) {
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
func (p *pair) redial(old *net.TCPConn) bool {
	old.Close()
	c, d, err := p.f.replace(p)
	if err != nil {
		p.f.dialFailed(p, err)
		return false
	}
	// Swap and replay under mu: writeUp waits, so no newer chunk can
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
