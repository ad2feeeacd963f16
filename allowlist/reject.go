package allowlist

import "net"

// Reject closes c with a reset where c is a TCP socket, so a denied client
// learns at once (ECONNRESET) instead of seeing a clean EOF it could take
// for a server that closed after reading its request. Other connections
// are closed plainly. c is closed whatever the result.
func Reject(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		return tc.Close()
	}
	return c.Close()
}
