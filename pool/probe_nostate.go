//go:build unix && !linux && !aix

package pool

// established would check fd's TCP state; there is no portable TCP_INFO
// outside Linux, so it accepts. A greeting followed by the peer's FIN then
// passes the probe (the client reads the greeting, then EOF), and Put still
// refuses the connection for its unread bytes.
func established(fd int) error { return nil }
