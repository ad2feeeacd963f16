package forward

import (
	"net"
	"syscall"
)

// kernelStream is a Stream over one of the kernel's sockets, TLS over TCP
// (tlsup.Conn): the replay rule can ask that socket whether the client's
// bytes ever reached the server, as it asks a socket of our own.
type kernelStream interface {
	NetConn() net.Conn      // the socket under the stream
	WrittenSinceProbe() int // bytes put on that socket since the pool's probe: the stream's framing included
}

// replayableStream applies the replay rule to s, a pooled Stream that
// failed after written of the client's bytes were written to it: case 1
// for any Stream, case 2 too for one whose socket the kernel can speak for.
// The socket's count is the one the kernel's unacknowledged bytes compare
// with: a TLS record carries more than the bytes it was given.
func replayableStream(s upConn, written int) bool {
	if written == 0 {
		return true
	}
	ks, ok := s.(kernelStream)
	if !ok {
		return false
	}
	sc, ok := ks.NetConn().(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return replayableFD(func(fn func(fd int)) {
		raw.Control(func(fd uintptr) { fn(int(fd)) })
	}, ks.WrittenSinceProbe())
}
