//go:build wpgoroutines

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

// recv takes the next thing src has for d, waiting in Go's netpoller until
// there is one: n > 0 bytes read into buf (the caller returns it with putBuf),
// or with peek n > 0 bytes left queued for a splice (buf nil), or EOF (n 0).
// It holds no buffer or pipe while it waits, and each try comes after Go
// reset the socket's readiness, so no wake-up is lost between a try and the
// wait. Before its first wait it arms the park timer (armWait) and reports
// that in armed; if arming fails it returns that error. With budget, it
// returns errOverBudget instead of waiting when waitBudget directions
// already wait.
func (p *pair) recv(d *dir, src *net.TCPConn, peek, budget bool) (buf *[]byte, n int, armed bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return nil, 0, false, err
	}
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		if peek {
			n, opErr = queuedFD(int(fd))
		} else {
			buf = getBuf()
			n, opErr = readFD(int(fd), *buf)
			if n == 0 { // EOF, an error or nothing yet: no bytes to hand over
				putBuf(buf)
				buf = nil
			}
		}
		if opErr != errNotReady {
			return true
		}
		if !armed {
			if budget && p.f.overWaitBudget() {
				opErr = errOverBudget
				return true
			}
			if opErr = p.armWait(d, src); opErr != nil {
				return true
			}
			armed = true
			p.f.waiting.Add(1)
		}
		return false // wait in the netpoller
	})
	if armed {
		p.f.waiting.Add(-1)
	}
	if err == nil {
		err = opErr
	}
	return buf, n, armed, err
}

func readFD(fd int, b []byte) (int, error) {
	n, err := unix.Read(fd, b)
	switch err {
	case nil:
		return n, nil
	case unix.EAGAIN, unix.EINTR:
		return 0, errNotReady
	}
	return 0, err
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

// move copies the q bytes found queued on src to dst. On Linux io.Copy
// between two *net.TCPConn through an io.LimitedReader splices: the bytes
// never enter user space, and the copy returns as soon as those q bytes are
// through, so it never parks holding a pipe while src is idle.
func move(dst, src *net.TCPConn, q int, lr *io.LimitedReader) (n int64, err error) {
	lr.R, lr.N = src, int64(min(q, maxChunk))
	n, err = io.Copy(dst, lr)
	lr.R = nil
	return n, err
}

// maxChunk bounds one splice so live byte counters move at least every 4 MiB.
const maxChunk = 4 << 20
