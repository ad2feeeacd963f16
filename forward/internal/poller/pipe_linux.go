package poller

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Pipe is a pipe that splices bytes through the kernel. Its fields are
// int32s because a pair's two directions each hold one.
type Pipe struct {
	R, W  int32
	Slots int32 // buffers the pipe holds: a splice into it stops when they run out
}

// PipeSize is each pipe's capacity: what one splice can move.
const PipeSize = 1 << 20

// keepPipes bounds the empty pipes kept for reuse.
const keepPipes = 32

// Pipes is a cache of empty pipes, for one goroutine.
type Pipes struct {
	free []Pipe
}

// Get returns an empty pipe.
func (c *Pipes) Get() (Pipe, error) {
	if n := len(c.free); n > 0 {
		p := c.free[n-1]
		c.free = c.free[:n-1]
		return p, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return Pipe{}, fmt.Errorf("pipe: %w", err)
	}
	size, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, PipeSize)
	if err != nil { // smaller works too, with more splices
		size, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_GETPIPE_SZ, 0)
	}
	return Pipe{R: int32(fds[0]), W: int32(fds[1]), Slots: int32(size / os.Getpagesize())}, nil
}

// Put takes back a pipe; one that is not empty is closed.
func (c *Pipes) Put(p Pipe, empty bool) {
	if empty && len(c.free) < keepPipes {
		c.free = append(c.free, p)
		return
	}
	p.close()
}

// Close closes the cached pipes.
func (c *Pipes) Close() {
	for _, p := range c.free {
		p.close()
	}
	c.free = nil
}

func (p Pipe) close() {
	unix.Close(int(p.R))
	unix.Close(int(p.W))
}
