package forward

import (
	"errors"
	"io"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errNotReady: nothing queued on the socket right now, and no EOF.
var errNotReady = errors.New("forward: not ready")

// queued returns, without blocking, how many bytes c has queued: >0 bytes,
// 0 for EOF, or errNotReady. In the common case it costs one ioctl; only when
// nothing is queued does it peek to tell EOF from "not yet".
func queued(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n, opErr := 0, error(nil)
	err = rc.Control(func(fd uintptr) { n, opErr = queuedFD(int(fd)) })
	if err != nil {
		return 0, err
	}
	return n, opErr
}

func queuedFD(fd int) (int, error) {
	// One syscall: TCP's recvmsg with MSG_PEEK|MSG_TRUNC neither copies nor
	// consumes, and returns how many bytes are queued (up to the length
	// given), 0 at EOF, or EAGAIN. truncBuf backs the length anyway, so a
	// kernel that did copy could cost memory but never corrupt it.
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&truncBuf[0])),
		uintptr(len(truncBuf)), unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		return int(n), nil
	case unix.EAGAIN, unix.EINTR:
		return 0, errNotReady
	}
	return 0, errno
}

// truncBuf is never written (see queuedFD): it costs address space, not RSS.
var truncBuf [maxChunk]byte

// waitReadable blocks in Go's netpoller, holding no splice pipe, until c has
// bytes or EOF, and returns how many bytes are queued (0 is EOF). It honours
// c's read deadline.
func waitReadable(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n, opErr := 0, error(nil)
	err = rc.Read(func(fd uintptr) bool {
		n, opErr = queuedFD(int(fd))
		return opErr != errNotReady // false parks in the netpoller
	})
	if err != nil {
		return 0, err
	}
	return n, opErr
}

// move copies the q bytes found queued on src to dst. On Linux io.Copy
// between two *net.TCPConn through an io.LimitedReader splices: the bytes
// never enter user space, and the copy returns as soon as those q bytes are
// through, so it never parks holding a pipe while src is idle.
func move(dst, src *net.TCPConn, q int, lr *io.LimitedReader) (n int64, eof bool, err error) {
	lr.R, lr.N = src, int64(min(q, maxChunk))
	n, err = io.Copy(dst, lr)
	lr.R = nil
	return n, false, err
}

// maxChunk bounds one splice so live byte counters move at least every 4 MiB.
const maxChunk = 4 << 20
