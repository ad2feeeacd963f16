package main

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// benchNet is the only address space the simulated link carries (RFC 2544
// benchmarking addresses). The relay drops every packet from or to elsewhere.
var benchNet = netip.MustParsePrefix("198.18.0.0/24")

// inBenchNet reports whether p is an IPv4 packet whose source and destination
// are both inside benchNet.
func inBenchNet(p []byte) bool {
	if len(p) < 20 || p[0]>>4 != 4 {
		return false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	return benchNet.Contains(src) && benchNet.Contains(dst)
}

// delayQueue is one direction of the simulated link: every packet pushed is
// delivered exactly delay later (never earlier), in the order pushed. Because
// the delay is the same for every packet, arrival order is also due order, so
// a FIFO channel is the whole queue: the deliverer only ever waits for the
// head. A full queue drops the packet, as a real link's buffer would.
type delayQueue struct {
	delay   time.Duration
	items   chan delayed
	sleep   func(time.Duration) // how the deliverer waits; time.Sleep unless a finer sleep is given
	dropped atomic.Int64
}

type delayed struct {
	pkt []byte
	due time.Time
}

func newDelayQueue(delay time.Duration, capacity int, sleep func(time.Duration)) *delayQueue {
	if sleep == nil {
		sleep = time.Sleep
	}
	return &delayQueue{delay: delay, items: make(chan delayed, capacity), sleep: sleep}
}

// push queues pkt (which the queue now owns) to be delivered delay from now.
// It never blocks; it reports false when the queue was full and pkt dropped.
func (q *delayQueue) push(pkt []byte) bool {
	select {
	case q.items <- delayed{pkt: pkt, due: time.Now().Add(q.delay)}:
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// close ends the queue: run delivers what is queued and returns. push must
// not be called after close.
func (q *delayQueue) close() { close(q.items) }

// run delivers every packet at (or just after) its due time, in order, until
// the queue is closed and drained.
func (q *delayQueue) run(deliver func([]byte)) {
	for it := range q.items {
		// Each pass sleeps the remaining time, so this ends once due passes
		// (a sleep cut short by a signal just goes round again).
		for d := time.Until(it.due); d > 0; d = time.Until(it.due) {
			q.sleep(d)
		}
		deliver(it.pkt)
	}
}
