package forward

import (
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// PoolStats are the warm pool's counters right now.
func (f *Forwarder) PoolStats() pool.Stats { return f.pool.Stats() }

// Started is when the forwarder began listening.
func (f *Forwarder) Started() time.Time { return f.started }

// Active is the number of connections open right now.
func (f *Forwarder) Active() int { return f.live.len() }

// Summary is the session so far: kept records, totals including the bytes
// of connections still open, and the pool's counters.
func (f *Forwarder) Summary() session.Summary {
	recs, dropped := f.recs.Snapshot()
	return session.Summary{
		Local:       f.Addr().String(),
		Remote:      f.cfg.Remote,
		Via:         f.cfg.Via,
		Started:     f.started,
		Ended:       time.Now(),
		Connections: recs,
		Dropped:     dropped,
		Totals:      f.Totals(),
		Pool:        f.pool.Stats(),
	}
}

// Totals counts every connection so far, open ones included.
func (f *Forwarder) Totals() session.Totals {
	return session.Totals{
		Connections: f.nextID.Load(),
		Failed:      f.failed.Load(),
		Denied:      f.denied.Load(),
		BytesUp:     f.bytesUp.Load(),
		BytesDown:   f.bytesDown.Load(),
	}
}
