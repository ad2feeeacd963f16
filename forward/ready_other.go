//go:build !linux

package forward

import (
	"errors"
	"io"
	"net"
)

// recv cannot read without blocking portably here, so it blocks in Read,
// holding its buffer: an idle pair then costs a parked read (a goroutine) but
// no extra file descriptors. It returns 0 at EOF, like the Linux one.
func (p *pair) recv(d *dir, src *net.TCPConn, peek, budget bool) (buf *[]byte, n int, armed bool, err error) {
	buf = getBuf()
	n, err = src.Read(*buf)
	if err == io.EOF {
		err = nil
	}
	if n == 0 {
		putBuf(buf)
		buf = nil
	}
	return buf, n, false, err
}

// move is never reached here: recv never leaves bytes queued for it.
func move(dst, src *net.TCPConn, q int, lr *io.LimitedReader) (int64, error) {
	return 0, errors.ErrUnsupported
}
