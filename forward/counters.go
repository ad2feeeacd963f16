package forward

import (
	"time"

	"github.com/warmport/warmport/pool"
)

// PoolStats are the warm pool's counters right now.
func (f *Forwarder) PoolStats() pool.Stats { return f.pool.Stats() }

// Started is when the forwarder began listening.
func (f *Forwarder) Started() time.Time { return f.started }
