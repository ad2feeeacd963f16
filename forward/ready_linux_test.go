//go:build wpgoroutines

package forward

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// queued asks, without blocking, what c has queued, as recv does with peek.
func queued(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n, opErr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { n, opErr = queuedFD(int(fd)) }); err != nil {
		return 0, err
	}
	return n, opErr
}

// queuedFD must report exactly what is queued without consuming it, 0 at
// EOF, and errNotReady when nothing is there yet.
func TestQueued(t *testing.T) {
	got := make(chan *upstreamSide, 1)
	up := startUpstream(t, func(c *net.TCPConn) { s := &upstreamSide{c: c, done: make(chan struct{})}; got <- s; <-s.done })
	c := dial(t, up.addr())
	srv := <-got
	defer close(srv.done)

	if n, err := queued(srv.c); err != errNotReady {
		t.Fatalf("empty socket: queued = %d, %v; want errNotReady", n, err)
	}
	msg := bytes.Repeat([]byte("q"), 60000) // fits a fresh receive buffer
	go c.Write(msg)
	eventually(t, "all bytes queued", func() bool { n, _ := queued(srv.c); return n == len(msg) })
	if n, err := queued(srv.c); n != len(msg) || err != nil { // asking again consumed nothing
		t.Fatalf("queued again = %d, %v; want %d", n, err, len(msg))
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(srv.c, b); err != nil || !bytes.Equal(b, msg) {
		t.Fatalf("read after peeking: %v, equal %v; want the bytes untouched", err, bytes.Equal(b, msg))
	}
	c.CloseWrite()
	eventually(t, "EOF seen", func() bool { n, err := queued(srv.c); return n == 0 && err == nil })
}

type upstreamSide struct {
	c    *net.TCPConn
	done chan struct{}
}
