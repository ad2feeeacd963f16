//go:build unix && !aix

package pool

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// probe checks c with one non-blocking syscall, recvfrom(MSG_PEEK|MSG_DONTWAIT)
// of one byte, which leaves any waiting bytes in the socket: EAGAIN means
// alive and quiet, 0 bytes that the peer closed, an error that c is dead.
// Bytes waiting (a greeting) may hide a FIN or RST behind them: on Linux the
// TCP state then decides (see established). With strict (for Put), a quiet
// connection's TCP state is checked too, which refuses one we shut down
// for writing.
//
// The caller clears c's deadlines first (check). probe must not run while
// another goroutine reads c.
func probe(c syscall.Conn, strict bool) (health, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return quiet, err
	}
	pr := peeker{strict: strict}
	if err := rc.Read(pr.check); err != nil {
		return quiet, err
	}
	return pr.h, pr.err
}

// peeker holds one probe's result.
type peeker struct {
	strict bool
	h      health
	err    error
}

// check makes the probe's syscall on fd. It always returns true: RawConn.Read
// must never wait for c to become readable.
func (pr *peeker) check(fd uintptr) bool {
	var b [1]byte
	n, err := recvPeek(int(fd), b[:])
	switch {
	case err == unix.EAGAIN || err == unix.EWOULDBLOCK:
		pr.h = quiet
		if pr.strict {
			pr.err = established(int(fd))
		}
	case err != nil:
		pr.err = err
	case n == 0:
		pr.err = io.EOF
	default:
		pr.h = pending
		pr.err = established(int(fd))
	}
	return true
}
