//go:build unix && !linux

package tlsup

import (
	"os"

	"golang.org/x/sys/unix"
)

// recvNow reads (or with peek, peeks at) fd without waiting: errWouldBlock
// when nothing is queued.
func recvNow(fd int, b []byte, peek bool) (int, error) {
	flags := unix.MSG_DONTWAIT
	if peek {
		flags |= unix.MSG_PEEK
	}
	for {
		n, _, err := unix.Recvfrom(fd, b, flags)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		default:
			return 0, os.NewSyscallError("recvfrom", err)
		}
	}
}

// readable tells whether a read on fd would not wait: bytes queued, EOF or
// an error. Unlike a peek, it leaves a pending error (a reset) in place.
func readable(fd int) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	return err != nil || n > 0
}
