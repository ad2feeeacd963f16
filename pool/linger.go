package pool

import (
	"sync"
	"syscall"
	"time"
)

// How long a connection let go waits, half-closed, for the server's FIN
// (see letGo), and how many may wait at once.
const (
	lingerFor   = 2 * time.Second       // while the pool serves
	lingerAtEnd = time.Second           // after Close: a forwarder's exit waits no longer (a server that greets late, under load, needs this long)
	lingerTick  = 20 * time.Millisecond // how often lingering connections are read
	lingerMax   = 64                    // more than this are closed at once, politely or not
)

// lingerSet holds the connections let go that wait for the server's FIN. One
// goroutine reads them every lingerTick while there are any.
type lingerSet struct {
	mu      sync.Mutex
	conns   []lingering
	running bool
	ended   chan struct{} // closed when the running goroutine exits
	closing bool          // the pool was closed: deadlines are cut to lingerAtEnd
}

type lingering struct {
	c     interface{ Close() error }
	rc    syscall.RawConn
	until time.Time
}

// add makes c linger, or closes it at once when too many already do.
func (l *lingerSet) add(c interface{ Close() error }, rc syscall.RawConn, closing bool) {
	wait := lingerFor
	if closing {
		wait = lingerAtEnd
	}
	l.mu.Lock()
	if len(l.conns) >= lingerMax {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.conns = append(l.conns, lingering{c: c, rc: rc, until: time.Now().Add(wait)})
	start := !l.running
	if start {
		l.running, l.ended = true, make(chan struct{})
	}
	l.mu.Unlock()
	if start {
		go l.run()
	}
}

// run reads the lingering connections every lingerTick and closes each once
// its server's FIN came or its time is up; it exits when none is left.
func (l *lingerSet) run() {
	t := time.NewTicker(lingerTick)
	defer t.Stop()
	for range t.C {
		now := time.Now()
		var done []interface{ Close() error }
		l.mu.Lock()
		keep := l.conns[:0]
		for _, g := range l.conns {
			if l.closing && g.until.After(now.Add(lingerAtEnd)) {
				g.until = now.Add(lingerAtEnd)
			}
			if drainRaw(g.rc) || now.After(g.until) {
				done = append(done, g.c)
				continue
			}
			keep = append(keep, g)
		}
		clear(l.conns[len(keep):])
		l.conns = keep
		last := len(keep) == 0
		if last {
			l.running = false
			close(l.ended)
		}
		l.mu.Unlock()
		for _, c := range done {
			c.Close()
		}
		if last {
			return
		}
	}
}

// close cuts every lingering connection's wait to lingerAtEnd and waits for
// them to be closed.
func (l *lingerSet) close() {
	l.mu.Lock()
	l.closing = true
	ended, running := l.ended, l.running
	l.mu.Unlock()
	if running {
		<-ended
	}
}
