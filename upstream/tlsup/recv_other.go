//go:build !unix

package tlsup

// recvNow has no non-blocking receive on this platform: it reports nothing
// queued, so Probe calls every connection alive (the forwarder's replay
// covers a dead one).
func recvNow(fd int, b []byte, peek bool) (int, error) { return 0, errWouldBlock }

// readable cannot tell on this platform and says yes.
func readable(fd int) bool { return true }
