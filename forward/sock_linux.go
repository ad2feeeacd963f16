package forward

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock is a TCP socket the forwarder owns outright: a nonblocking fd that is
// in the loop's epoll set only, never in Go's netpoller. Go's net would add
// an epoll_ctl pair, address lookups and a second poller's wake-ups to every
// connection; this is what lets the loop pay less than a goroutine per
// direction (see loop_linux.go). Every use of the fd holds mu, so a Close
// from another goroutine can never let the number be reused under a user.
type sock struct {
	mu    sync.Mutex
	fd    int // -1 once closed
	raddr netip.AddrPort
	name  string // a Unix socket's peer as records name it (unix:PATH); "" for TCP
}

func newSock(fd int, raddr netip.AddrPort) *sock { return &sock{fd: fd, raddr: raddr} }

// do runs op on the fd, unless the socket is closed.
func (s *sock) do(op func(fd int) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	return op(s.fd)
}

// io runs a read or write op on the fd, unless the socket is closed,
// retrying it when a signal cut it short (EINTR); n is never negative.
func (s *sock) io(op func(fd int) (int, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, err := op(s.fd)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

// Close closes the socket (which takes it out of the epoll set); later
// calls return net.ErrClosed.
func (s *sock) Close() error {
	s.mu.Lock()
	fd := s.fd
	s.fd = -1
	s.mu.Unlock()
	if fd < 0 {
		return net.ErrClosed
	}
	return rawClose(fd)
}

// resetClose closes c with a reset (SO_LINGER 0) instead of a FIN, for an
// abort; a closed socket stays closed.
func resetClose(c *sock) {
	c.mu.Lock()
	fd := c.fd
	c.fd = -1
	c.mu.Unlock()
	if fd >= 0 {
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		rawClose(fd)
	}
}

// withFD runs fn on c's fd, unless c is closed.
func withFD(c *sock, fn func(fd int)) {
	c.do(func(fd int) error { fn(fd); return nil })
}

// CloseWrite sends a FIN: shutdown(SHUT_WR).
func (s *sock) CloseWrite() error {
	return s.do(rawShutdown)
}

func (s *sock) RemoteAddr() net.Addr {
	if s.name != "" {
		return unixAddr(s.name)
	}
	return net.TCPAddrFromAddrPort(s.raddr)
}

// remoteAddr is c's peer as its record shows it, as net.TCPAddr.String
// would put it (an IPv4-mapped address as IPv4) in one allocation, not four.
func remoteAddr(c *sock) string {
	if c.name != "" {
		return c.name
	}
	return netip.AddrPortFrom(c.raddr.Addr().Unmap(), c.raddr.Port()).String()
}

// SyscallConn gives the pool's probe the fd. Read calls its function once:
// the probe never waits.
func (s *sock) SyscallConn() (syscall.RawConn, error) { return (*sockRaw)(s), nil }

type sockRaw sock

func (r *sockRaw) Control(f func(fd uintptr)) error {
	return (*sock)(r).do(func(fd int) error { f(uintptr(fd)); return nil })
}

func (r *sockRaw) Read(f func(fd uintptr) bool) error {
	return (*sock)(r).do(func(fd int) error {
		if !f(uintptr(fd)) {
			return unix.EAGAIN
		}
		return nil
	})
}

func (r *sockRaw) Write(f func(fd uintptr) bool) error { return r.Read(f) }

// accept takes the next client from the listener, waiting in Go's netpoller
// while there is none. It accepts on a duplicate of the listener's fd: Go
// offers no raw reads on a listener itself.
func (f *Forwarder) accept() (*sock, error) {
	f.acceptMu.Lock()
	defer f.acceptMu.Unlock()
	err := f.lnRC.Read(f.acceptFn)
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: f.Addr().Network(), Addr: f.Addr(), Err: err}
	}
	if f.acceptErr != nil {
		return nil, &net.OpError{Op: "accept", Net: f.Addr().Network(), Addr: f.Addr(), Err: os.NewSyscallError("accept4", f.acceptErr)}
	}
	c := newSock(f.accepted, f.acceptAddr) // options: see openAccept
	c.name = f.localUnix                   // a Unix client has no address worth a record
	return c, nil
}

// acceptOnce accepts on fd; false (wait) while no client is there.
func (f *Forwarder) acceptOnce(fd uintptr) bool {
	for {
		f.accepted, f.acceptAddr, f.acceptErr = rawAccept4(int(fd))
		if f.acceptErr != unix.EINTR {
			return f.acceptErr != unix.EAGAIN
		}
	}
}

// openAccept opens the duplicate of the listener that accept reads, and
// sets the clients' socket options on the listener once: an accepted socket
// inherits TCP_NODELAY and the keepalive settings from it, which saves a
// setsockopt per client (five off loopback). New calls it right after
// listening, before the ready line: a client queued in between would miss
// them. A Unix socket has no such options.
func (f *Forwarder) openAccept() error {
	file, err := f.listener.(interface{ File() (*os.File, error) }).File() // nonblocking, so in Go's netpoller
	if err != nil {
		return err
	}
	rc, err := file.SyscallConn()
	if err == nil && f.localUnix == "" {
		err = rc.Control(func(fd uintptr) { setSockopts(int(fd), keepAlive(f.cfg.Local) >= 0) })
	}
	if err != nil {
		file.Close()
		return err
	}
	f.lnFile, f.lnRC, f.acceptFn = file, rc, f.acceptOnce
	return nil
}

// closeAccept closes the duplicate too: the socket listens until both are
// closed.
func (f *Forwarder) closeAccept() {
	if f.lnFile != nil {
		f.lnFile.Close()
	}
}

// setSockopts: TCP_NODELAY, as Go sets it, and Go's default keepalive (probes
// after 15 s idle) where a peer can vanish without a word (see keepAlive).
func setSockopts(fd int, keepalive bool) {
	rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if keepalive {
		rawSetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
		rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
		rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
	}
}

// The relay's syscalls never block (every fd is nonblocking), so they are
// made raw: without Go's syscall bookkeeping, no thread hand-off can follow
// a slow one, and sysmon, finding no P in a syscall, backs off.

func rawSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	return errnoResult(r, e)
}

func rawRead(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return errnoResult(r, e)
}

func rawWrite(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return errnoResult(r, e)
}

func rawShutdown(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	return errnoErr(e)
}

func rawClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func errnoResult(r uintptr, e syscall.Errno) (int, error) {
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func errnoErr(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func rawEpollPoll(epfd int, evs []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	return errnoResult(r, e)
}

func rawAccept4(lfd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(r), rawAddrPort(&rsa), nil
}

// rawAddrPort reads an IPv4 or IPv6 socket address (x/sys's parser asks the
// kernel for the socket's protocol first: a syscall per accept).
func rawAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), ntohs(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), ntohs(a.Port))
	}
	return netip.AddrPort{}
}

func ntohs(p uint16) uint16 { return p>>8 | p<<8 }

func rawSocket(family int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	return errnoResult(r, e)
}

func rawSetsockoptInt(fd, level, opt, v int) error {
	x := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), 4, 0)
	return errnoErr(e)
}

func rawSOError(fd int) (int, error) {
	var x int32
	n := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&x)), uintptr(unsafe.Pointer(&n)), 0)
	return int(x), errnoErr(e)
}

// rawConnect starts a nonblocking connect to a.
func rawConnect(fd int, a netip.AddrPort) error {
	var ptr unsafe.Pointer
	var size uintptr
	var sa4 unix.RawSockaddrInet4
	var sa6 unix.RawSockaddrInet6
	if a.Addr().Is4() {
		sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: ntohs(a.Port()), Addr: a.Addr().As4()}
		ptr, size = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	} else {
		sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: ntohs(a.Port()), Addr: a.Addr().As16()}
		ptr, size = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size)
	return errnoErr(e)
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// resetExchange writes req to c and reads the reply until check has it
// whole, by deadline, waiting in poll(2): c is out of the loop's epoll set.
func resetExchange(c *sock, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	err := error(net.ErrClosed)
	withFD(c, func(fd int) { err = exchangeFD(fd, req, check, deadline) })
	return err
}

func exchangeFD(fd int, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	for len(req) > 0 {
		n, err := rawWrite(fd, req)
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
		n, err := rawRead(fd, buf)
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
