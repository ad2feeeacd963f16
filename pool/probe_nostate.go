//go:build unix && !linux && !aix

package pool

import "golang.org/x/sys/unix"

// established would check fd's TCP state; there is no portable TCP_INFO
// outside Linux, so it accepts. A greeting followed by the peer's FIN then
// passes the probe (the client reads the greeting, then EOF), and Put still
// refuses the connection for its unread bytes.
func established(fd int) error { return nil }

// recvPeek peeks at fd without blocking, retrying if a signal interrupted it.
func recvPeek(fd int, b []byte) (n int, err error) {
	for {
		n, _, err = unix.Recvfrom(fd, b, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			return n, err
		}
	}
}
