//go:build !linux

package forward

import (
	"errors"
	"io"
	"net"
	"sync"
)

var errNotReady = errors.New("forward: not ready")

// queued cannot peek portably here, so it reports a chunk as ready and lets
// move's Read block instead: an idle pair then costs a parked read (a
// goroutine) but no extra file descriptors.
func queued(c *net.TCPConn) (int, error) { return chunkSize, nil }

func waitReadable(c *net.TCPConn) (int, error) { return chunkSize, nil }

const chunkSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// move reads once from src and writes what it got to dst, so the live byte
// counters and the idle timer see every chunk.
func move(dst, src *net.TCPConn, q int, _ *io.LimitedReader) (n int64, eof bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:min(q, chunkSize)]
	m, rerr := src.Read(buf)
	if m > 0 {
		w, werr := dst.Write(buf[:m])
		n = int64(w)
		if werr != nil {
			return n, false, werr
		}
	}
	if rerr == io.EOF {
		return n, true, nil
	}
	return n, false, rerr
}
