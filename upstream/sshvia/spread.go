package sshvia

import "time"

// Where a new channel goes. Over a long round trip, to the quietest
// connection (see defaultConns and sshConn.quieter); to a nearby server,
// to the first one, as the hold that spreading avoids then costs a client
// less than the CPU that spreading costs every connection.

// defaultSpreadRTT is the round trip from which new channels are spread.
// Below it a reply held back by Nagle waits under a millisecond, while
// spreading costs CPU on both ends (fewer packets per read, write and
// wakeup): 50 concurrent short clients through sshd on loopback, at high
// priority, made 2300 connections a second on one connection and 1850
// spread over four (warmport 256 against 334 µs of CPU each, sshd 254
// against 356).
const defaultSpreadRTT = time.Millisecond

// rttWindow: the round trip is the smallest channel open time in this
// window or the one before, as opens queued behind a busy sshd take longer
// than the path, and a path that got slower shows within two of them.
const rttWindow = 10 * time.Second

// pick is the live connection a new channel should be opened on, or nil
// and a channel closed when a keeper connects: over a round trip of
// t.spread or more (or one not yet known) the quietest, else the first.
func (t *Tunnel) pick() (*sshConn, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rtt := t.rtt[0]
	if r := t.rtt[1]; rtt == 0 || (r > 0 && r < rtt) {
		rtt = r
	}
	near := rtt > 0 && rtt < t.spread
	var best *sshConn
	for i, c := range t.conns {
		switch {
		case c == nil:
		case c.dropped() != nil:
			t.conns[i] = nil // its keeper closes it and redials
		case best == nil:
			best = c
		case !near && c.quieter(best):
			best = c
		}
	}
	return best, t.ready
}

// tookRTT counts a channel open that took d: the round trip to the server,
// plus the server's connect to the target, plus any queueing.
func (t *Tunnel) tookRTT(d time.Duration) {
	now := time.Now()
	t.mu.Lock()
	switch {
	case now.Sub(t.rttAt) > rttWindow:
		t.rtt, t.rttAt = [2]time.Duration{d, t.rtt[0]}, now
	case t.rtt[0] == 0 || d < t.rtt[0]:
		t.rtt[0] = d
	}
	t.mu.Unlock()
}
