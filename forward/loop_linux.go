package forward

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The event loops: a goroutine per loop relays every pair placed on it (one
// loop per P). Both sockets of a pair sit in its loop's epoll set,
// edge-triggered for reading and writing, from the pair's start to its end,
// so relaying costs no goroutine, no park or wake-up, no deadline and no
// epoll_ctl per chunk. An idle pair holds its two sockets and its struct,
// nothing else.
//
// The sockets are the forwarder's own (sock, in sock_linux.go), never in Go's
// netpoller: the loop reaches an fd only under its sock's lock, so a Close
// from another goroutine (an abort, the idle timer, Shutdown) can never let an
// fd number be reused under the loop.

// native is the Linux part of a Forwarder: its event loops, and the
// accept and dial state of its own sockets.
type native struct {
	loops    []*loop         // one per P
	nextLoop atomic.Uint32   // engineFor's turn
	lnFile   *os.File        // the listener's duplicate that accept reads
	lnRC     syscall.RawConn // lnFile's
	// literal is REMOTE's address once parsed, if it is an IP literal.
	literal atomic.Pointer[[]netip.AddrPort]
	// accept's, under acceptMu (Serve may run twice at once): what
	// acceptOnce found, and acceptOnce as a func value made once (a closure
	// per call would cost allocations per client).
	acceptMu   sync.Mutex
	accepted   int
	acceptAddr netip.AddrPort
	acceptErr  error
	acceptFn   func(fd uintptr) bool
}

// loop is the epoll set and everything only its goroutine touches.
type loop struct {
	f        *Forwarder
	epfd     int
	epf      *os.File        // epfd, as Go's netpoller sees it
	rc       syscall.RawConn // waits on epf
	evfd     int             // wakes the loop: posts and close
	wg       sync.WaitGroup
	stopOnce sync.Once

	mu      sync.Mutex
	pairs   map[uint64]*pair // registered pairs, by id
	posted  []*pair          // pairs with news for the loop (abort, redial)
	closing bool

	// The loop goroutine's own.
	pipes    []lpipe            // empty pipes, ready for the next splice
	buf      []byte             // the replay window's reads
	evs      []*pair            // this batch's pairs
	events   []unix.EpollEvent  // this batch's events
	nev      int                // how many, from waitOnce
	werr     error              // waitOnce's error
	waitFn   func(uintptr) bool // waitOnce, made once: a closure per wait allocates
	recorder recorder           // records ended pairs off the loop
}

// lpipe is a pipe that splices bytes through the kernel.
type lpipe struct {
	r, w  int
	slots int // buffers the pipe holds: a splice into it stops when they run out
}

// keepPipes bounds the empty pipes kept for reuse.
const keepPipes = 32

// pipeSize is each pipe's capacity: what one splice can move.
const pipeSize = 1 << 20

const wakeKey = 0 // the eventfd's key; a pair's sockets are 2*id and 2*id+1

func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// startNative opens the listener's duplicate that accept reads and starts
// a loop per P (GOMAXPROCS, one per core by default): pairs are placed on
// them in turn and stay there. If epoll cannot be had, New fails.
func (f *Forwarder) startNative() error {
	if err := f.openAccept(); err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	for range runtime.GOMAXPROCS(0) {
		l, err := f.newLoop()
		if err != nil {
			f.stopNative()
			return err
		}
		f.loops = append(f.loops, l)
	}
	return nil
}

// engineFor picks p's engine: the loop for a pair whose ends are both the
// forwarder's own sockets, the copier for a Stream upstream (DialStream) or
// when a test asks for it.
func (f *Forwarder) engineFor(p *pair) engine {
	if testEngine == "copier" || f.cfg.DialStream != nil {
		return new(copyPair)
	}
	l := f.loops[int(f.nextLoop.Add(1))%len(f.loops)]
	p.lp.loop = l
	return l
}

func (f *Forwarder) newLoop() (*loop, error) {
	l := &loop{f: f, pairs: make(map[uint64]*pair), buf: make([]byte, bufSize)}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(l.epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setKey(&ev, wakeKey)
	if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err = unix.SetNonblock(l.epfd, true); err == nil {
		l.epf = os.NewFile(uintptr(l.epfd), "epoll") // pollable: Go's netpoller takes it
		l.rc, err = l.epf.SyscallConn()
	}
	if err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	l.recorder.start(f)
	l.wg.Add(1)
	go l.run()
	return l, nil
}

// stopNative stops the loops once every pair has ended. Later calls do
// nothing.
func (f *Forwarder) stopNative() {
	for _, l := range f.loops {
		l.stop()
	}
}

func (l *loop) stop() {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.signal()
		l.wg.Wait()
		l.recorder.stop()
		for _, p := range l.pipes {
			closePipe(p)
		}
		unix.Close(l.evfd)
		l.epf.Close()
	})
}

func (l *loop) post(p *pair) {
	l.mu.Lock()
	l.posted = append(l.posted, p)
	l.mu.Unlock()
	l.signal()
}

func (l *loop) signal() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	unix.Write(l.evfd, one)
}

// add registers p's two sockets; the loop relays from the first event on.
// Edge-triggered registration reports what is already readable at once.
func (l *loop) add(p *pair) error {
	l.mu.Lock()
	l.pairs[p.id] = p
	l.mu.Unlock()
	if err := l.addSocket(p, false); err != nil {
		return err
	}
	return l.addSocket(p, true)
}

func (l *loop) addSocket(p *pair, upstream bool) error {
	c, key := p.client, 2*p.id
	if upstream {
		c, key = p.upstream.Load(), key+1
	}
	return c.do(func(fd int) error {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET}
		setKey(&ev, key)
		return rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	})
}

func (l *loop) run() {
	defer l.wg.Done()
	growStack()
	l.events = make([]unix.EpollEvent, 256)
	events := l.events
	l.evs = make([]*pair, len(events))
	l.waitFn = l.waitOnce
	for {
		// Wait in Go's netpoller, where the epoll fd itself is registered:
		// a goroutine blocked in epoll_wait would hold a thread that sysmon
		// keeps taking the P from, and wake-ups would cost a hand-off each.
		err := l.rc.Read(l.waitFn)
		n := l.nev
		if err == nil {
			err = l.werr
		}
		if err != nil {
			panic(fmt.Sprintf("warmport: epoll_wait: %v", err)) // EBADF, EFAULT, EINVAL: a bug of ours
		}
		woken := false
		l.mu.Lock()
		for i := range events[:n] {
			key := getKey(&events[i])
			if key == wakeKey {
				woken = true
				l.evs[i] = nil
				continue
			}
			l.evs[i] = l.pairs[key/2] // nil: a late event of a pair that ended
		}
		l.mu.Unlock()
		for i := range events[:n] {
			if p := l.evs[i]; p != nil {
				l.evs[i] = nil
				l.event(p, getKey(&events[i])%2 == 1, events[i].Events)
			}
		}
		if woken && l.drainPosts() {
			return
		}
	}
}

// waitOnce takes the events ready on the epoll fd; false (wait in the
// netpoller) when there are none.
func (l *loop) waitOnce(fd uintptr) bool {
	for {
		l.nev, l.werr = rawEpollPoll(int(fd), l.events)
		if l.werr != unix.EINTR {
			return l.nev > 0 || l.werr != nil
		}
	}
}

// drainPosts runs what other goroutines posted; it reports whether the loop
// must stop.
func (l *loop) drainPosts() bool {
	var b [8]byte
	unix.Read(l.evfd, b[:])
	l.mu.Lock()
	posted, closing := l.posted, l.closing
	l.posted = nil
	l.mu.Unlock()
	for _, p := range posted {
		l.news(p)
	}
	return closing
}

// getPipe returns an empty pipe.
func (l *loop) getPipe() (lpipe, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return lpipe{}, fmt.Errorf("pipe: %w", err)
	}
	size, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil { // smaller works too, with more splices
		size, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_GETPIPE_SZ, 0)
	}
	return lpipe{r: fds[0], w: fds[1], slots: size / os.Getpagesize()}, nil
}

// putPipe takes back a pipe; one still holding bytes is closed.
func (l *loop) putPipe(p lpipe, empty bool) {
	if empty && len(l.pipes) < keepPipes {
		l.pipes = append(l.pipes, p)
		return
	}
	closePipe(p)
}

func closePipe(p lpipe) {
	unix.Close(p.r)
	unix.Close(p.w)
}

// recorder records ended pairs (Forwarder.record) in a goroutine of its
// own, so an OnClose that blocks (a stalled terminal) never stalls the loop.
type recorder struct {
	mu   sync.Mutex
	q    []*pair
	kick chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

func (r *recorder) start(f *Forwarder) {
	r.kick, r.quit = make(chan struct{}, 1), make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.kick:
			case <-r.quit:
				return
			}
			r.mu.Lock()
			q := r.q
			r.q = nil
			r.mu.Unlock()
			for _, p := range q {
				f.record(p)
			}
		}
	}()
}

func (r *recorder) push(p *pair) {
	r.mu.Lock()
	r.q = append(r.q, p)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// stop ends the goroutine; call it once every pair has ended.
func (r *recorder) stop() {
	close(r.quit)
	r.wg.Wait()
}
