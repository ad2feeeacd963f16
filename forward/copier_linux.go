package forward

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// streamOf gives the copier s as a stream. The forwarder's own sockets are
// never in Go's netpoller, where the copier's Reads wait, so the stream is a
// duplicate of s's fd registered there: it shares the socket, so
// CloseWrite's shutdown and an abort's SO_LINGER reach the peer through
// either, and the socket closes once both fds are closed.
func streamOf(s *sock) (stream, error) {
	var file *os.File
	err := s.Do(func(fd int) error {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("dup", err)
		}
		file = os.NewFile(uintptr(dup), "sock")
		return nil
	})
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
