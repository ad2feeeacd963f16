//go:build !unix || aix

package pool

import "syscall"

// probe has no non-blocking peek on this platform: it reports the
// connection alive, with unknown pending bytes. Get hands it out (the
// forwarder's replay covers a dead one); Put refuses it with ErrUnchecked,
// since a stale response could be waiting.
func probe(c syscall.Conn, strict bool) (health, error) { return unknown, nil }
