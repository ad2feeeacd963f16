//go:build !linux || wpgoroutines

package forward

import (
	"net"
	"time"

	"github.com/warmport/warmport/pool"
)

// writeUp writes a chunk of the client's bytes to the upstream. While the
// pooled upstream has not spoken, the chunk is also kept for a replay, and a
// failed write is not an error: upstreamToClient sees the upstream die, dials
// a fresh one and replays what was kept, this chunk included.
func (p *pair) writeUp(b []byte) (int64, bool, error) {
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
	w, err := up.Write(b)
	if covered {
		return int64(len(b)), false, nil
	}
	return int64(w), false, err
}

// redial replaces a pooled upstream that died before its first byte with a
// fresh one and replays the client's first bytes on it. It runs once: a fresh
// dial's failure is the client's error, never retried.
func (p *pair) redial(old *net.TCPConn) bool {
	p.mu.Lock()
	p.redialed = true
	p.mu.Unlock()
	old.Close()
	c, d, err := p.f.pool.Dial(p.f.hardCtx)
	if err != nil {
		p.abort(ClosedByError, err)
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
