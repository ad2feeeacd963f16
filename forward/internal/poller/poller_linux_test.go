package poller

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func newPoller(t *testing.T) *Poller {
	t.Helper()
	pl, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	return pl
}

// socketPair returns the two ends of a connected Unix stream socket.
func socketPair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// An fd added under a key is reported under that key when it has input,
// and not once it was taken out of the set.
func TestWaitReportsTheKey(t *testing.T) {
	pl := newPoller(t)
	a, b := socketPair(t)
	const key = 1<<40 + 7 // both halves of the epoll data carry it
	if err := pl.Add(a, key); err != nil {
		t.Fatal(err)
	}
	evs, err := pl.Wait() // writable at once: edge-triggered registration reports it
	if err != nil || len(evs) != 1 || Key(&evs[0]) != key || evs[0].Events&unix.EPOLLOUT == 0 {
		t.Fatalf("Wait after Add: %v, %v; want one EPOLLOUT event under key %d", evs, err, key)
	}
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	evs, err = pl.Wait()
	if err != nil || len(evs) != 1 || Key(&evs[0]) != key || evs[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("Wait after input: %v, %v; want one EPOLLIN event under key %d", evs, err, key)
	}
	if err := pl.Del(a); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(b, []byte("y")); err != nil {
		t.Fatal(err)
	}
	pl.Post(3) // Wait must return: with the wake-up only
	evs, err = pl.Wait()
	if err != nil || len(evs) != 1 || Key(&evs[0]) != WakeKey {
		t.Fatalf("Wait after Del: %v, %v; want the wake-up alone", evs, err)
	}
}

// Posted keys come back in order, once, with a wake-up; Stop is reported
// by the next Take.
func TestPostAndStop(t *testing.T) {
	pl := newPoller(t)
	for _, k := range []uint64{5, 7, 5} {
		pl.Post(k)
	}
	evs, err := pl.Wait()
	if err != nil || len(evs) != 1 || Key(&evs[0]) != WakeKey {
		t.Fatalf("Wait after Post: %v, %v; want the wake-up", evs, err)
	}
	posted, stopping := pl.Take()
	if want := []uint64{5, 7, 5}; !slices.Equal(posted, want) || stopping {
		t.Fatalf("Take: %v, %v; want %v, false", posted, stopping, want)
	}
	if posted, _ := pl.Take(); len(posted) != 0 {
		t.Fatalf("second Take: %v; want nothing", posted)
	}
	pl.Stop()
	if evs, err := pl.Wait(); err != nil || len(evs) != 1 || Key(&evs[0]) != WakeKey {
		t.Fatalf("Wait after Stop: %v, %v; want the wake-up", evs, err)
	}
	if posted, stopping := pl.Take(); len(posted) != 0 || !stopping {
		t.Fatalf("Take after Stop: %v, %v; want nothing, true", posted, stopping)
	}
}

// An empty pipe given back is handed out again; one that holds bytes is
// closed.
func TestPipesReuseOnlyEmptyOnes(t *testing.T) {
	var c Pipes
	defer c.Close()
	p, err := c.Get()
	if err != nil {
		t.Fatal(err)
	}
	if p.Slots <= 0 {
		t.Fatalf("pipe of %d slots; want some", p.Slots)
	}
	c.Put(p, true)
	if q, err := c.Get(); err != nil || q != p {
		t.Fatalf("Get after an empty Put: %+v, %v; want %+v again", q, err, p)
	}
	c.Put(p, false)
	if _, err := unix.FcntlInt(uintptr(p.R), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("a pipe put back with bytes in it: fcntl %v; want EBADF (closed)", err)
	}
}
