package pool

import (
	"syscall"
	"time"
)

// health is what the liveness probe learned about a connection it found
// alive (see probe, in the platform files).
type health uint8

const (
	quiet   health = iota // alive, nothing to read
	pending               // alive, bytes waiting: a server greeting, or a stale response
	unknown               // this platform offers no check: assumed alive, pending unknown
)

// check probes c by the first way it offers (see Conn).
func check(c any, strict bool) (health, error) {
	switch c := c.(type) {
	case Prober:
		if err := c.Probe(); err != nil {
			return quiet, err
		}
		return unknown, nil
	case syscall.Conn:
		clearDeadline(c)
		return probe(c, strict)
	}
	return unknown, nil
}

// clearDeadline clears c's deadlines if it has any: with a past deadline,
// RawConn.Read fails without calling its function.
func clearDeadline(c any) {
	if d, ok := c.(interface{ SetDeadline(time.Time) error }); ok {
		d.SetDeadline(time.Time{})
	}
}
