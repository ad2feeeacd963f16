package forward

import "net"

// streamOf gives the copier s as a stream. The forwarder's own sockets are
// never in Go's netpoller, where the copier's Reads wait, so the stream is a
// duplicate of s's fd registered there (rawsock.Socket.File): it shares the
// socket, so CloseWrite's shutdown and an abort's SO_LINGER reach the peer
// through either, and the socket closes once both fds are closed.
func streamOf(s *sock) (stream, error) {
	file, err := s.File()
	if err != nil {
		return nil, err
	}
	defer file.Close() // FileConn holds a duplicate of its own
	c, err := net.FileConn(file)
	if err != nil {
		return nil, err
	}
	return c.(stream), nil
}

// dropStream closes the duplicate; the socket stays its sock's.
func dropStream(st stream) { st.Close() }
