//go:build wpgoroutines

package forward

import (
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// parker keeps idle directions in an epoll set of its own, so an idle pair
// costs no goroutine: one goroutine waits in epoll_wait for all of them and
// runs a direction again when its socket is readable. Registrations are
// EPOLLONESHOT: each fires at most once per park. Spurious wake-ups are
// harmless, since a direction always looks at its socket before acting.
type parker struct {
	once   sync.Once
	err    error // from starting; parking then fails and directions stay in the netpoller
	epfd   int
	evfd   int // wakes epoll_wait for close
	wg     sync.WaitGroup
	mu     sync.Mutex
	parked map[uint64]*dir
	// Memory release after a burst of directions parked (see noteParkedLocked).
	released int         // parked count at the last release
	release  *time.Timer // pending release, nil if none
	closed   bool
}

// A burst of parked directions leaves their goroutine stacks free but held
// by the process until the next GC, which an idle process only gets every
// two minutes; then the scavenger returns them. When the parked count has
// doubled past releaseFloor, one release, releaseDelay later, returns that
// memory at once. It runs at most once per doubling.
const (
	releaseFloor = 256
	releaseDelay = time.Second
)

func (pk *parker) noteParkedLocked() {
	n := len(pk.parked)
	if n < pk.released/2 {
		pk.released = n // the set shrank: measure the next burst from here
	}
	if n < releaseFloor || n < 2*pk.released || pk.release != nil || pk.closed {
		return
	}
	pk.release = time.AfterFunc(releaseDelay, func() {
		debug.FreeOSMemory()
		pk.mu.Lock()
		pk.released, pk.release = len(pk.parked), nil
		pk.mu.Unlock()
	})
}

const wakeKey = 0 // the eventfd's key; direction keys start at 2

func (pk *parker) start() {
	pk.once.Do(func() {
		pk.parked = make(map[uint64]*dir)
		if pk.epfd, pk.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); pk.err != nil {
			return
		}
		if pk.evfd, pk.err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); pk.err != nil {
			unix.Close(pk.epfd)
			return
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		setKey(&ev, wakeKey)
		if pk.err = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_ADD, pk.evfd, &ev); pk.err != nil {
			unix.Close(pk.evfd)
			unix.Close(pk.epfd)
			return
		}
		pk.wg.Add(1)
		go pk.loop()
	})
}

func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// park arms c in the epoll set for d. The socket is armed through Control,
// which holds Go's reference on the fd, so it cannot be closed (and its number
// reused) while we register it.
func (pk *parker) park(d *dir, c *net.TCPConn) error {
	pk.start()
	if pk.err != nil {
		return pk.err
	}
	pk.mu.Lock()
	pk.parked[d.key()] = d
	pk.noteParkedLocked()
	pk.mu.Unlock()
	rc, err := c.SyscallConn()
	if err != nil {
		pk.forget(d.key())
		return err
	}
	var ctlErr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
		setKey(&ev, d.key())
		// A socket is added once and re-armed after that; a recycled upstream
		// may still be registered from its previous client.
		ctlErr = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(ctlErr, unix.ENOENT) {
			ctlErr = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		pk.forget(d.key())
	}
	return err
}

func (pk *parker) forget(key uint64) {
	pk.mu.Lock()
	delete(pk.parked, key)
	pk.mu.Unlock()
}

func (pk *parker) loop() {
	defer pk.wg.Done()
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(pk.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for i := range events[:n] {
			key := getKey(&events[i])
			if key == wakeKey {
				return
			}
			pk.mu.Lock()
			d := pk.parked[key]
			pk.mu.Unlock()
			if d != nil {
				d.resume()
			}
		}
	}
}

// close stops the epoll goroutine; call it once no direction is parked.
func (pk *parker) close() {
	pk.start() // so close after no park at all is well defined
	if pk.err != nil {
		return
	}
	pk.mu.Lock()
	pk.closed = true
	if pk.release != nil {
		pk.release.Stop()
	}
	pk.mu.Unlock()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	unix.Write(pk.evfd, one)
	pk.wg.Wait()
	unix.Close(pk.evfd)
	unix.Close(pk.epfd)
}
