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
