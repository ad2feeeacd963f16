package poller

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller is an epoll set and its wake queue. Wait and Take are its
// goroutine's; Add, Del, Post and Stop may be called from any goroutine.
type Poller struct {
	epfd int
	epf  *os.File        // epfd, as Go's netpoller sees it
	rc   syscall.RawConn // waits on epf
	evfd int             // wakes Wait: posts and Stop

	mu       sync.Mutex
	posted   []uint64 // keys with news for the poller's goroutine
	stopping bool

	// Wait's own.
	events []unix.EpollEvent
	nev    int                // how many, from waitOnce
	werr   error              // waitOnce's error
	waitFn func(uintptr) bool // waitOnce, made once: a closure per wait allocates
}

// WakeKey is the eventfd's key: Wait reports it when something was posted
// or Stop was called. Callers' keys are never 0.
const WakeKey = 0

// Batch bounds the events one Wait returns.
const Batch = 256

// New opens an epoll set with its eventfd.
func New() (*Poller, error) {
	pl := &Poller{events: make([]unix.EpollEvent, Batch)}
	var err error
	if pl.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if pl.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(pl.epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setKey(&ev, WakeKey)
	if err = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, pl.evfd, &ev); err != nil {
		unix.Close(pl.evfd)
		unix.Close(pl.epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err = unix.SetNonblock(pl.epfd, true); err == nil {
		pl.epf = os.NewFile(uintptr(pl.epfd), "epoll") // pollable: Go's netpoller takes it
		pl.rc, err = pl.epf.SyscallConn()
	}
	if err != nil {
		unix.Close(pl.evfd)
		unix.Close(pl.epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	pl.waitFn = pl.waitOnce
	return pl, nil
}

// Close closes the epoll set and the eventfd; call it once Wait's goroutine
// is gone.
func (pl *Poller) Close() {
	unix.Close(pl.evfd)
	pl.epf.Close()
}

func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

// Key is the key ev was registered with.
func Key(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add puts fd in the set under key, edge-triggered for reading, writing and
// the peer's end. Edge-triggered registration reports what is already
// readable at once.
func (pl *Poller) Add(fd int, key uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET}
	setKey(&ev, key)
	return epollCtl(pl.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// Del takes fd out of the set; a closed fd leaves it by itself.
func (pl *Poller) Del(fd int) error {
	return epollCtl(pl.epfd, unix.EPOLL_CTL_DEL, fd, &unix.EpollEvent{})
}

// Wait returns the next batch of events, waiting in Go's netpoller, where
// the epoll fd itself is registered: a goroutine blocked in epoll_wait would
// hold a thread that sysmon keeps taking the P from, and wake-ups would cost
// a hand-off each. The batch is valid until the next Wait.
func (pl *Poller) Wait() ([]unix.EpollEvent, error) {
	err := pl.rc.Read(pl.waitFn)
	if err == nil {
		err = pl.werr
	}
	if err != nil {
		return nil, err
	}
	return pl.events[:pl.nev], nil
}

// waitOnce takes the events ready on the epoll fd; false (wait in the
// netpoller) when there are none.
func (pl *Poller) waitOnce(fd uintptr) bool {
	for {
		pl.nev, pl.werr = epollPoll(int(fd), pl.events)
		if pl.werr != unix.EINTR {
			return pl.nev > 0 || pl.werr != nil
		}
	}
}

// Post queues key for Wait's goroutine and wakes it (WakeKey).
func (pl *Poller) Post(key uint64) {
	pl.mu.Lock()
	pl.posted = append(pl.posted, key)
	pl.mu.Unlock()
	pl.signal()
}

// Stop asks Wait's goroutine to stop: its next Take says so.
func (pl *Poller) Stop() {
	pl.mu.Lock()
	pl.stopping = true
	pl.mu.Unlock()
	pl.signal()
}

func (pl *Poller) signal() {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	unix.Write(pl.evfd, one)
}

// Take returns the keys posted since the last Take, in order, and whether
// Stop was called; call it when Wait reported WakeKey.
func (pl *Poller) Take() (posted []uint64, stopping bool) {
	var b [8]byte
	unix.Read(pl.evfd, b[:])
	pl.mu.Lock()
	defer pl.mu.Unlock()
	posted, pl.posted = pl.posted, nil
	return posted, pl.stopping
}

func epollPoll(epfd int, evs []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// epollCtl is raw: it never blocks, and Add runs on the accept path.
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
