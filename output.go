package main

import (
	"fmt"
	"io"
	"sync"
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

// printf queues a line; it never blocks.
func (q *lineQueue) printf(format string, a ...any) { q.add(fmt.Sprintf(format, a...)) }

// add queues a line, or drops it when the queue is full or closed.
func (q *lineQueue) add(line string) {
	q.mu.Lock()
	if q.closed || len(q.lines) >= lineQueueMax {
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
