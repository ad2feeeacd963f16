package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// lineQueueMax bounds the lines waiting for a slow terminal. A line is
// about 120 bytes, so a full queue holds about 0.5 MiB, eight times what a
// 64 KiB pipe holds: a terminal that falls behind for a moment (a burst of
// short connections, a scroll) loses nothing, and one that stopped reading
// costs a bounded amount of memory instead of the relay's progress.
const lineQueueMax = 4096

// lineQueue is forward's stderr. Connections' lines are queued and written
// by one goroutine, so a terminal that stalls (a pipe nobody reads, Ctrl-S)
// or is gone (EPIPE) never holds up a connection, its slot or --exit-idle:
// what does not fit is dropped and counted.
type lineQueue struct {
	w   io.Writer
	wmu sync.Mutex // held while writing to w

	mu      sync.Mutex
	lines   []string
	closed  bool
	dropped uint64

	kick chan struct{}
	done chan struct{}
}

func newLineQueue(w io.Writer) *lineQueue {
	q := &lineQueue{w: w, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// printf queues one of warmport's own lines (a warning, the exit-idle
// line): a handful per run, so they are never dropped for room. It never
// blocks.
func (q *lineQueue) printf(format string, a ...any) { q.add(fmt.Sprintf(format, a...), true) }

// record queues a connection's line, or drops it when the queue is full.
func (q *lineQueue) record(line string) { q.add(line, false) }

func (q *lineQueue) add(line string, own bool) {
	q.mu.Lock()
	if q.closed || len(q.lines) >= lineQueueMax && !own {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.lines = append(q.lines, line)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// writeNow writes a line at once, between two batches of queued ones: for
// the ready line, which scripts wait for and nothing precedes.
func (q *lineQueue) writeNow(format string, a ...any) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	fmt.Fprintf(q.w, format, a...)
}

// run writes what is queued, each batch in one write. Write errors are
// ignored: a terminal that is gone has no one to tell.
func (q *lineQueue) run() {
	defer close(q.done)
	var spare []string
	var buf []byte
	for range q.kick {
		q.mu.Lock()
		batch, closed := q.lines, q.closed
		q.lines = spare[:0]
		q.mu.Unlock()
		buf = buf[:0]
		for _, l := range batch {
			buf = append(buf, l...)
		}
		if len(buf) > 0 {
			q.wmu.Lock()
			q.w.Write(buf)
			q.wmu.Unlock()
		}
		clear(batch)
		spare = batch
		if closed {
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // a burst's buffer is not kept for good
		}
	}
}

// close writes what is queued, which may wait on the terminal, and stops
// the writer; lines added later are dropped. It returns how many lines
// were dropped in all.
func (q *lineQueue) close() uint64 {
	q.mu.Lock()
	first := !q.closed
	q.closed = true
	q.mu.Unlock()
	if first {
		// A kick already pending wakes the writer just as well: it sees
		// closed when it takes the batch.
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	<-q.done
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// exitStall is how long forward waits at exit for a terminal that takes no
// byte at all: the session is saved by then, and `warmport stats ID` prints
// its summary again.
const exitStall = 5 * time.Second

// progressWriter writes to w in pieces of at most PIPE_BUF bytes and notes
// when each one went through, so that exit can tell a slow terminal from
// one that stopped.
type progressWriter struct {
	w    io.Writer
	last atomic.Int64 // UnixNano of the last write that returned
}

func newProgressWriter(w io.Writer) *progressWriter {
	p := &progressWriter{w: w}
	p.last.Store(time.Now().UnixNano())
	return p
}

func (p *progressWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := p.w.Write(b[:min(len(b), 4096)])
		p.last.Store(time.Now().UnixNano())
		written += n
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// wait waits for done (the exit's output written), but not for a terminal
// that took nothing for exitStall, and only a second more after kill (a
// second signal).
func (p *progressWriter) wait(done <-chan struct{}, kill context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-kill.Done():
			select {
			case <-done:
			case <-time.After(time.Second):
			}
			return
		case <-tick.C:
			if time.Since(time.Unix(0, p.last.Load())) > exitStall {
				return
			}
		}
	}
}
