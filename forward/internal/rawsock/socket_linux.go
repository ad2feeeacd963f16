package rawsock

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is a TCP or Unix socket the forwarder owns outright: a nonblocking
// fd that is in an event loop's epoll set only, never in Go's netpoller. Go's
// net would add an epoll_ctl pair, address lookups and a second poller's
// wake-ups to every connection. Every use of the fd holds mu, so a Close from
// another goroutine can never let the number be reused under a user.
//
// An idle pair holds two, so a Socket is kept in 48 bytes: the fd as an
// int32 and the peer's address as its bytes, not a netip.AddrPort (32 bytes
// with its zone handle; the kernel's peer addresses carry no zone, and a
// dialed link-local address's zone is not kept).
type Socket struct {
	mu     sync.Mutex
	fd     int32 // -1 once closed
	port   uint16
	family uint8    // 4 or 6: ip is the TCP peer's address; 0: no IP peer
	ip     [16]byte // the peer's address, an IPv4 one in its IPv4-mapped form
	name   string   // a Unix socket's peer as records name it (unix:PATH); "" for TCP
}

// New makes fd a Socket connected to raddr (TCP), or for a Unix socket to
// the peer records name as name (unix:PATH).
func New(fd int, raddr netip.AddrPort, name string) *Socket {
	s := &Socket{fd: int32(fd), name: name}
	if a := raddr.Addr(); a.IsValid() {
		s.family, s.ip, s.port = 6, a.As16(), raddr.Port()
		if a.Is4() {
			s.family = 4
		}
	}
	return s
}

// raddr is the TCP peer's address and port; invalid for a Unix socket.
func (s *Socket) raddr() netip.AddrPort {
	switch s.family {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom16(s.ip).Unmap(), s.port)
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16(s.ip), s.port)
	}
	return netip.AddrPort{}
}

// Do runs op on the fd, unless the socket is closed.
func (s *Socket) Do(op func(fd int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	return op(int(s.fd))
}

// Control runs fn on the fd, unless the socket is closed.
func (s *Socket) Control(fn func(fd int)) {
	s.Do(func(fd int) error { fn(fd); return nil })
}

// IO runs a read or write op on the fd, unless the socket is closed,
// retrying it when a signal cut it short (EINTR); n is never negative.
func (s *Socket) IO(op func(fd int) (int, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, err := op(int(s.fd))
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

// Close closes the socket (which takes it out of any epoll set); later
// calls return net.ErrClosed.
func (s *Socket) Close() error {
	s.mu.Lock()
	fd := int(s.fd)
	s.fd = -1
	s.mu.Unlock()
	if fd < 0 {
		return net.ErrClosed
	}
	return Close(fd)
}

// ResetClose closes s with a reset (SO_LINGER 0) instead of a FIN, for an
// abort; a closed socket stays closed.
func (s *Socket) ResetClose() {
	s.mu.Lock()
	fd := int(s.fd)
	s.fd = -1
	s.mu.Unlock()
	if fd >= 0 {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		Close(fd)
	}
}

// CloseWrite sends a FIN: shutdown(SHUT_WR).
func (s *Socket) CloseWrite() error {
	return s.Do(shutdownWrite)
}

func (s *Socket) RemoteAddr() net.Addr {
	if s.name != "" {
		return UnixAddr(s.name)
	}
	return net.TCPAddrFromAddrPort(s.raddr())
}

// Peer is s's peer as a record shows it, as net.TCPAddr.String would put it
// (an IPv4-mapped address as IPv4) in one allocation, not four.
func (s *Socket) Peer() string {
	if s.name != "" {
		return s.name
	}
	a := s.raddr()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
}

// File returns a duplicate of s's fd, which shares the socket: a shutdown
// or SO_LINGER through either reaches the peer, and the socket closes once
// both are closed. The duplicate is nonblocking, so it goes into Go's
// netpoller when a net.Conn is made of it.
func (s *Socket) File() (*os.File, error) {
	var file *os.File
	err := s.Do(func(fd int) error {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("dup", err)
		}
		file = os.NewFile(uintptr(dup), "socket")
		return nil
	})
	return file, err
}

// SyscallConn gives the pool's probe the fd. Read calls its function once:
// the probe never waits.
func (s *Socket) SyscallConn() (syscall.RawConn, error) { return (*rawConn)(s), nil }

type rawConn Socket

func (r *rawConn) Control(f func(fd uintptr)) error {
	return (*Socket)(r).Do(func(fd int) error { f(uintptr(fd)); return nil })
}

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	return (*Socket)(r).Do(func(fd int) error {
		if !f(uintptr(fd)) {
			return unix.EAGAIN
		}
		return nil
	})
}

func (r *rawConn) Write(f func(fd uintptr) bool) error { return r.Read(f) }

// SetSockopts: TCP_NODELAY, as Go sets it, and Go's default keepalive
// (probes after 15 s idle) where a peer can vanish without a word.
func SetSockopts(fd int, keepalive bool) {
	setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if keepalive {
		setsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
	}
}

// Exchange writes req to s and reads the reply until check has it whole,
// by deadline, waiting in poll(2): s is in no epoll set meanwhile.
func Exchange(s *Socket, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	err := error(net.ErrClosed)
	s.Control(func(fd int) { err = exchange(fd, req, check, deadline) })
	return err
}

func exchange(fd int, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	for len(req) > 0 {
		n, err := Write(fd, req)
		switch err {
		case nil:
			req = req[n:]
		case unix.EAGAIN:
			if err := waitFD(fd, unix.POLLOUT, deadline); err != nil {
				return err
			}
		case unix.EINTR:
		default:
			return err
		}
	}
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := Read(fd, buf)
		switch {
		case err == unix.EAGAIN:
			if err := waitFD(fd, unix.POLLIN, deadline); err != nil {
				return err
			}
			continue
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		reply = append(reply, buf[:n]...)
		if done, err := check(reply); done || err != nil {
			return err
		}
	}
}

// waitFD waits in poll(2) until fd has events or deadline passes.
func waitFD(fd int, events int16, deadline time.Time) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		n, err := unix.Poll(pfd, int(wait/time.Millisecond)+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		return err
	}
}
