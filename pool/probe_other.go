//go:build !unix || aix

package pool

import (
	"time"
)

// probe has no non-blocking peek on this platform: it clears c's deadlines
// and reports the connection alive, with unknown pending bytes. Get hands it
// out (the forwarder's replay covers a dead one); Put refuses it with
// ErrUnchecked, since a stale response could be waiting.
func probe(c Socket, strict bool) (health, error) {
	if err := c.SetDeadline(time.Time{}); err != nil {
		return quiet, err
	}
	return unknown, nil
}
