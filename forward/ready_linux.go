package forward

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// canSplice reports whether pump moves bytes in the kernel (splice(2)).
const canSplice = true

// waitReadable blocks, in Go's netpoller and holding no splice pipe, until c
// has bytes to read or has reached EOF, and returns how many bytes are queued
// (0 means EOF). It honours c's read deadline. In the common case it costs one
// ioctl; only when nothing is queued does it peek to tell EOF from "not yet".
func waitReadable(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var opErr error
	err = rc.Read(func(fd uintptr) bool {
		q, e := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if e != nil {
			opErr = e
			return true
		}
		if q > 0 {
			n = q
			return true
		}
		var b [1]byte
		m, _, e := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			return false // nothing yet: park in the netpoller
		case e != nil:
			opErr = e
		default:
			n = m // 0 is EOF; 1 means bytes arrived since the ioctl
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return n, opErr
}

// move copies the q bytes that waitReadable found queued on src to dst. On
// Linux io.Copy between two *net.TCPConn through an io.LimitedReader splices:
// the bytes never enter user space, and the copy returns as soon as those q
// bytes are through, so it never parks holding a pipe while src is idle.
func move(dst, src *net.TCPConn, q int, lr *io.LimitedReader) (n int64, eof bool, err error) {
	if q > maxChunk {
		q = maxChunk
	}
	lr.R, lr.N = src, int64(q)
	n, err = io.Copy(dst, lr)
	lr.R = nil
	return n, false, err
}

// maxChunk bounds one splice so live byte counters move at least every 4 MiB.
const maxChunk = 4 << 20
