package pool

// health is what the liveness probe learned about a connection it found
// alive (see probe, in the platform files).
type health uint8

const (
	quiet   health = iota // alive, nothing to read
	pending               // alive, bytes waiting: a server greeting, or a stale response
	unknown               // this platform offers no check: assumed alive, pending unknown
)
