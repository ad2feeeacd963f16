package tlsup

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// splitConn, once armed, writes the next Write in two parts: a few bytes,
// then (after half is closed, when rest is) the remainder.
type splitConn struct {
	net.Conn
	armed      atomic.Bool
	half, rest chan struct{}
}

func (s *splitConn) Write(b []byte) (int, error) {
	if !s.armed.CompareAndSwap(true, false) || len(b) < 4 {
		return s.Conn.Write(b)
	}
	n, err := s.Conn.Write(b[:3])
	close(s.half)
	if err != nil {
		return n, err
	}
	select {
	case <-s.rest:
	case <-time.After(waitBound): // the test gave up
	}
	m, err := s.Conn.Write(b[3:])
	return n + m, err
}

// eofHider hides the socket's EOF from TLS above it: it becomes
// errBareFIN. A TLS server over it sees io.EOF only from a close_notify.
type eofHider struct{ net.Conn }

var errBareFIN = errors.New("the socket's EOF came without a close_notify")

func (e eofHider) Read(b []byte) (int, error) {
	n, err := e.Conn.Read(b)
	if err == io.EOF {
		err = errBareFIN
	}
	return n, err
}
