// evproto: raw-epoll TCP port forwarder prototype (no net package, no netpoller).
//
// Design: N event loops, each a goroutine with its own epoll fd blocking in
// epoll_wait(-1). All sockets are registered edge-triggered
// (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) once, at creation, and never modified:
// "stop reading a source" is simply not reading it (we remember that it is
// still readable) until the destination's EPOLLOUT edge drains the pending
// bytes. This needs 0 EPOLL_CTL_MOD calls; 2 EPOLL_CTL_ADD per connection.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const bufSize = 64 << 10

type conn struct {
	fd         int
	gen        int32
	loop       *loop
	peer       *conn
	pend       []byte // bytes waiting to be written to fd (came from peer)
	connecting bool   // upstream nonblocking connect in progress
	readable   bool   // edge seen, not yet drained
	rdhup      bool   // EPOLLRDHUP seen: peer sent FIN
	rdEOF      bool   // read() returned EOF (or inferred)
	closed     bool
	tc         *net.TCPConn // -gonet: owner of fd (keeps finalizer away; Close goes through it)
}

type loop struct {
	id   int
	epfd int
	lfd  int // listener fd registered in this loop, or -1
	buf  []byte
	evs  []unix.EpollEvent
	gen  int32

	// -gonet: pairs created by dial goroutines. Pushed (under qmu) BEFORE their
	// EPOLL_CTL_ADD, so when the loop gets an event for an fd it does not know
	// yet, draining the queue is guaranteed to find it. No eventfd needed:
	// the fd's own epoll event is the wake-up. table stays single-writer
	// (only the owning loop writes table[fd] for its fds).
	qmu  sync.Mutex
	q    []*conn
	qn   atomic.Int32
	qtmp []*conn
}

var (
	table    []*conn // indexed by fd; entry owned by the loop the fd is registered in
	loops    []*loop
	upSA     unix.Sockaddr
	rr       uint32
	useRaw   bool
	skipSOE  bool
	rawWait  bool
	nodelay  bool
	accepted atomic.Int64
	goNet    bool
)

const evMask = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// ---- thin syscall wrappers; -raw uses RawSyscall (no entersyscall/exitsyscall)
// for calls that never block (all fds are nonblocking).

func sysRead(fd int, p []byte) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	if useRaw {
		r, _, e = syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	} else {
		r, _, e = syscall.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	}
	return int(r), e
}

func sysWrite(fd int, p []byte) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	if useRaw {
		r, _, e = syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	} else {
		r, _, e = syscall.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	}
	return int(r), e
}

func sysAccept(lfd int) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	fl := uintptr(unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC)
	if useRaw {
		r, _, e = syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, fl, 0, 0)
	} else {
		r, _, e = syscall.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, fl, 0, 0)
	}
	return int(r), e
}

func sysClose(fd int) {
	if useRaw {
		syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	} else {
		unix.Close(fd)
	}
}

func sysShutWR(fd int) {
	if useRaw {
		syscall.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	} else {
		unix.Shutdown(fd, unix.SHUT_WR)
	}
}

func setNoDelay(fd int) {
	if nodelay {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

// ----

func parseAddr(s string) unix.Sockaddr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad address", s, err)
		os.Exit(2)
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

func listenSock(sa unix.Sockaddr, reuseport bool) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	must(err)
	must(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
	if reuseport {
		must(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
	}
	must(unix.Bind(fd, sa))
	must(unix.Listen(fd, 4096))
	return fd
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fatal:", err)
		os.Exit(1)
	}
}

func (l *loop) register(c *conn) {
	ev := unix.EpollEvent{Events: evMask, Fd: int32(c.fd), Pad: c.gen}
	if err := unix.EpollCtl(c.loop.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		fmt.Fprintln(os.Stderr, "epoll_ctl add:", err)
	}
}

// acceptAll drains the listener (it is registered edge-triggered).
func (l *loop) acceptAll(reuseport bool) {
	for {
		cfd, e := sysAccept(l.lfd)
		if e != 0 {
			if e == unix.EINTR || e == unix.ECONNABORTED {
				continue
			}
			return // EAGAIN (or EMFILE etc: give up this round)
		}
		accepted.Add(1)
		setNoDelay(cfd)
		ufd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			sysClose(cfd)
			continue
		}
		setNoDelay(ufd)
		connecting := false
		if err := unix.Connect(ufd, upSA); err != nil {
			if err != unix.EINPROGRESS {
				sysClose(cfd)
				sysClose(ufd)
				continue
			}
			connecting = true
		}
		// choose owner loop
		tl := l
		if !reuseport && len(loops) > 1 {
			rr++
			tl = loops[rr%uint32(len(loops))]
		}
		tl2 := tl
		g := atomic.AddInt32(&tl2.gen, 1) // only contention: acceptor vs owner; atomic keeps it sane
		cc := &conn{fd: cfd, gen: g, loop: tl}
		uc := &conn{fd: ufd, gen: g, loop: tl, connecting: connecting}
		cc.peer, uc.peer = uc, cc
		table[cfd], table[ufd] = cc, uc
		// From here on the conns are owned by tl; its epoll_wait sees them only
		// after these ADDs.
		tl.register(uc)
		tl.register(cc)
	}
}

func (l *loop) closePair(c *conn) {
	p := c.peer
	for _, x := range [2]*conn{c, p} {
		if !x.closed {
			x.closed = true
			table[x.fd] = nil
			if x.tc != nil {
				x.tc.Close() // evicts from Go's netpoller, then close(); close removes it from our epoll set
				x.tc = nil
			} else {
				sysClose(x.fd) // close() removes it from the epoll set
			}
		}
	}
}

// pump moves data from src to src.peer while possible.
func (l *loop) pump(src *conn) {
	dst := src.peer
	for src.readable && !src.rdEOF {
		if dst.connecting || len(dst.pend) > 0 {
			return // wait for dst EPOLLOUT; src stays "readable"
		}
		n, e := sysRead(src.fd, l.buf)
		if e != 0 {
			if e == unix.EAGAIN {
				src.readable = false
				return
			}
			if e == unix.EINTR {
				continue
			}
			l.closePair(src)
			return
		}
		if n == 0 {
			l.onEOF(src)
			return
		}
		// write to dst
		off := 0
		for off < n {
			m, e := sysWrite(dst.fd, l.buf[off:n])
			if e != 0 {
				if e == unix.EINTR {
					continue
				}
				if e == unix.EAGAIN {
					break
				}
				l.closePair(src)
				return
			}
			off += m
		}
		if off < n {
			dst.pend = append(dst.pend[:0], l.buf[off:n]...)
			return
		}
		if n < len(l.buf) {
			// Short read on a stream socket: receive queue was drained. Any new
			// data (or FIN) arriving later produces a new ET edge, so no need to
			// spend a read() on EAGAIN. If FIN had already been seen (RDHUP), the
			// stream is at EOF now.
			src.readable = false
			if src.rdhup {
				l.onEOF(src)
			}
			return
		}
	}
}

func (l *loop) onEOF(src *conn) {
	src.rdEOF = true
	src.readable = false
	dst := src.peer
	if dst.rdEOF {
		// both directions finished (dst's EOF already propagated to src by
		// shutdown); close() of dst sends its FIN, no explicit shutdown needed.
		l.closePair(src)
		return
	}
	// dst.pend is empty here (pump never reads while it is non-empty).
	sysShutWR(dst.fd)
}

// flush writes pending bytes to c; returns false if the pair got closed.
func (l *loop) flush(c *conn) bool {
	for len(c.pend) > 0 {
		m, e := sysWrite(c.fd, c.pend)
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			if e == unix.EAGAIN {
				return true
			}
			l.closePair(c)
			return false
		}
		c.pend = c.pend[m:]
	}
	c.pend = nil
	return true
}

func (l *loop) handle(c *conn, ev uint32) {
	if c.connecting {
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.closePair(c)
			return
		}
		if ev&unix.EPOLLOUT == 0 {
			return
		}
		if !skipSOE {
			v, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil || v != 0 {
				l.closePair(c)
				return
			}
		}
		c.connecting = false
		// client may already have data waiting
		l.pump(c.peer)
		if c.closed {
			return
		}
	} else if ev&unix.EPOLLERR != 0 {
		l.closePair(c)
		return
	}
	if ev&unix.EPOLLOUT != 0 && len(c.pend) > 0 {
		if !l.flush(c) {
			return
		}
		if len(c.pend) == 0 {
			p := c.peer
			if p.readable {
				l.pump(p)
				if c.closed {
					return
				}
			}
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		c.readable = true
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
			c.rdhup = true
		}
		l.pump(c)
	}
}

func (l *loop) run(reuseport, lock bool) {
	if lock {
		runtime.LockOSThread()
	}
	for {
		var n int
		var err error
		if rawWait {
			// Blocking epoll_wait without telling the scheduler (P stays with this M,
			// sysmon never retakes it). Only sane because each loop goroutine is the
			// only thing its P runs; signals (e.g. preemption) return EINTR.
			r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.evs[0])), uintptr(len(l.evs)), ^uintptr(0), 0, 0)
			n = int(r)
			if e != 0 {
				err = e
			}
		} else {
			n, err = unix.EpollWait(l.epfd, l.evs, -1)
		}
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			must(err)
		}
		for i := 0; i < n; i++ {
			ev := &l.evs[i]
			fd := int(ev.Fd)
			if fd == l.lfd {
				l.acceptAll(reuseport)
				continue
			}
			c := table[fd]
			if goNet && (c == nil || c.gen != ev.Pad) && l.qn.Load() != 0 {
				l.drainQ()
				c = table[fd]
			}
			// stale event for an fd closed earlier in this batch (and maybe
			// reused by another loop): drop it.
			if c == nil || c.loop != l || c.gen != ev.Pad || c.closed {
				continue
			}
			l.handle(c, ev.Events)
		}
	}
}

// ---- -gonet: sockets created/owned by Go's net package, relay in the loop.

func (l *loop) drainQ() {
	l.qmu.Lock()
	l.qtmp, l.q = l.q, l.qtmp[:0]
	l.qn.Store(0)
	l.qmu.Unlock()
	for i, c := range l.qtmp {
		table[c.fd] = c
		l.qtmp[i] = nil
	}
}

func rawFD(tc *net.TCPConn) int {
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(f uintptr) { fd = int(f) }) != nil {
		return -1
	}
	return fd
}

func goNetServe(listen, upstream string) {
	ln, err := net.Listen("tcp", listen)
	must(err)
	d := net.Dialer{Timeout: 10 * time.Second}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			time.Sleep(5 * time.Millisecond) // EMFILE etc
			continue
		}
		accepted.Add(1)
		go func(c *net.TCPConn) {
			u, err := d.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			uc := u.(*net.TCPConn)
			cfd, ufd := rawFD(c), rawFD(uc)
			if cfd < 0 || ufd < 0 {
				c.Close()
				uc.Close()
				return
			}
			tl := loops[0]
			if len(loops) > 1 {
				tl = loops[atomic.AddUint32(&rr, 1)%uint32(len(loops))]
			}
			g := atomic.AddInt32(&tl.gen, 1)
			cc := &conn{fd: cfd, gen: g, loop: tl, tc: c}
			ucn := &conn{fd: ufd, gen: g, loop: tl, tc: uc}
			cc.peer, ucn.peer = ucn, cc
			tl.qmu.Lock()
			tl.q = append(tl.q, ucn, cc)
			tl.qn.Store(int32(len(tl.q)))
			tl.qmu.Unlock()
			tl.register(ucn)
			tl.register(cc)
		}(c.(*net.TCPConn))
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9201", "")
	upstream := flag.String("upstream", "127.0.0.1:9000", "")
	nloops := flag.Int("loops", 1, "")
	reuseport := flag.Bool("reuseport", false, "one SO_REUSEPORT listener per loop, pairs stay in accepting loop")
	lock := flag.Bool("lock", false, "runtime.LockOSThread in each loop")
	flag.BoolVar(&useRaw, "raw", false, "RawSyscall for nonblocking syscalls")
	flag.BoolVar(&rawWait, "rawwait", false, "RawSyscall for blocking epoll_wait too (implies -lock)")
	flag.BoolVar(&skipSOE, "nosoerr", false, "skip getsockopt(SO_ERROR) after connect (rely on EPOLLERR)")
	flag.BoolVar(&nodelay, "nodelay", true, "TCP_NODELAY on both sides")
	flag.BoolVar(&goNet, "gonet", false, "accept/dial via Go's net (sockets stay in Go's netpoller); only the relay runs in the epoll loops")
	flag.Parse()
	if rawWait {
		*lock = true
	}

	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	rl.Cur = rl.Max
	unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	tsize := int(rl.Cur)
	if tsize > 1<<21 || tsize <= 0 {
		tsize = 1 << 21
	}
	table = make([]*conn, tsize)
	upSA = parseAddr(*upstream)
	lsa := parseAddr(*listen)

	for i := 0; i < *nloops; i++ {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		must(err)
		l := &loop{id: i, epfd: epfd, lfd: -1, buf: make([]byte, bufSize), evs: make([]unix.EpollEvent, 256)}
		if !goNet && (i == 0 || *reuseport) {
			l.lfd = listenSock(lsa, *reuseport)
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(l.lfd)}
			must(unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, l.lfd, &ev))
		}
		loops = append(loops, l)
	}
	if goNet {
		for _, l := range loops {
			go l.run(*reuseport, *lock)
		}
		goNetServe(*listen, *upstream)
		return
	}
	for _, l := range loops[1:] {
		go l.run(*reuseport, *lock)
	}
	loops[0].run(*reuseport, *lock)
}
