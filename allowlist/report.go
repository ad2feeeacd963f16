package allowlist

import (
	"fmt"
	"sync"
	"time"
)

// DefaultLinesPerSecond is how many denied clients a Reporter names per
// second before it only counts them.
const DefaultLinesPerSecond = 5

// Reporter prints one line per denied client, at most perSecond of them in
// any one-second window; the rest of the window is counted and summed up in
// one "... and K more" line when the window ends. A port scan therefore
// costs the terminal perSecond+1 lines a second, however fast it knocks.
type Reporter struct {
	logf      func(format string, args ...any)
	perSecond int

	// Test doubles: the clock and the timer that ends a window.
	now       func() time.Time
	afterFunc func(d time.Duration, f func())

	mu         sync.Mutex
	windowEnd  time.Time // zero while no window is open
	printed    int       // lines in the open window
	suppressed int       // denied clients counted but not named in it
	flushing   bool      // a timer will end the open window
}

// NewReporter reports through logf (one call per line, no trailing
// newline), naming at most perSecond clients a second (0 means
// DefaultLinesPerSecond).
func NewReporter(logf func(format string, args ...any), perSecond int) *Reporter {
	if perSecond <= 0 {
		perSecond = DefaultLinesPerSecond
	}
	return &Reporter{logf: logf, perSecond: perSecond, now: time.Now,
		afterFunc: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// Denied reports one denied client. It never blocks on anything but the
// reporter's own lock and logf.
func (r *Reporter) Denied(client fmt.Stringer) {
	r.mu.Lock()
	now := r.now()
	var more int
	if !r.windowEnd.IsZero() && !now.Before(r.windowEnd) {
		more = r.endWindowLocked()
	}
	if r.windowEnd.IsZero() {
		r.windowEnd = now.Add(time.Second)
	}
	name := r.printed < r.perSecond
	if name {
		r.printed++
	} else {
		r.suppressed++
		if !r.flushing {
			// The window's summary must come even if the scan stops now.
			r.flushing = true
			r.afterFunc(r.windowEnd.Sub(now), r.flush)
		}
	}
	r.mu.Unlock()

	if more > 0 {
		r.logf("warmport: ... and %d more denied", more)
	}
	if name {
		r.logf("warmport: denied %s (not in --allow)", client)
	}
}

// flush ends the window its timer was set for, if Denied has not already.
func (r *Reporter) flush() {
	r.mu.Lock()
	var more int
	if r.flushing && !r.now().Before(r.windowEnd) {
		more = r.endWindowLocked()
	}
	r.mu.Unlock()
	if more > 0 {
		r.logf("warmport: ... and %d more denied", more)
	}
}

// endWindowLocked closes the open window and returns how many clients it
// counted without naming.
func (r *Reporter) endWindowLocked() int {
	more := r.suppressed
	r.windowEnd, r.printed, r.suppressed, r.flushing = time.Time{}, 0, 0, false
	return more
}
