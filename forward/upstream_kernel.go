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
	onFD := fdOf(s)
	if !ok || onFD == nil {
		return false
	}
	return replayableFD(onFD, ks.WrittenSinceProbe())
}

// fdOf lends the fd of up's socket of the kernel's (a *sock, or a
// kernelStream's) to the func it is given, unless the socket is closed; nil
// when up has none (an SSH channel).
func fdOf(up upConn) func(func(fd int)) {
	switch u := up.(type) {
	case *sock:
		return func(fn func(fd int)) { withFD(u, fn) }
	case kernelStream:
		sc, ok := u.NetConn().(syscall.Conn)
		if !ok {
			return nil
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return nil
		}
		return func(fn func(fd int)) { raw.Control(func(fd uintptr) { fn(int(fd)) }) }
	}
	return nil
}
