package tlsup

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvNow reads (or with peek, peeks at) fd without waiting: errWouldBlock
// when nothing is queued. The syscall is raw, as in pool's probe: it cannot
// block, so the scheduler need not hear of it.
func recvNow(fd int, b []byte, peek bool) (int, error) {
	flags := uintptr(unix.MSG_DONTWAIT)
	if peek {
		flags |= unix.MSG_PEEK
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), flags, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, errWouldBlock
		default:
			return 0, os.NewSyscallError("recvfrom", e)
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
