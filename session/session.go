// Package session holds what a forwarder's session leaves behind: a Record
// per connection, the Totals, the Summary that `forward --json` prints, and
// the bounded Ring that keeps the last records of a long session.
package session

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/warmport/warmport/pool"
)

// How a connection ended (Record.ClosedBy).
const (
	ClosedByClient   = "client"   // the client's EOF came first and both directions ended cleanly
	ClosedByRemote   = "remote"   // the upstream's EOF came first and both directions ended cleanly
	ClosedByTimeout  = "timeout"  // no byte either way for the idle timeout
	ClosedByShutdown = "shutdown" // still open when the drain timeout ran out, or a second signal came
	ClosedByError    = "error"    // a dial or a socket failed; Record.Error says what
)

// Record is one client connection, as the JSON summary shows it.
type Record struct {
	ID         uint64    `json:"id"`
	Client     string    `json:"client"`
	Upstream   string    `json:"upstream"`
	Source     string    `json:"source"`
	DialMS     float64   `json:"dial_ms"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
	BytesUp    int64     `json:"bytes_up"`
	BytesDown  int64     `json:"bytes_down"`
	ClosedBy   string    `json:"closed_by"`
	Error      string    `json:"error"`
}

// Totals counts every connection of a session, kept in the list or not.
type Totals struct {
	Connections uint64 `json:"connections"`
	Failed      uint64 `json:"failed"`
	Denied      uint64 `json:"denied"` // clients --allow turned away at accept, in no other count
	BytesUp     int64  `json:"bytes_up"`
	BytesDown   int64  `json:"bytes_down"`
}

// Summary is a whole session: the object `forward --json` prints at exit.
type Summary struct {
	Local       string     `json:"local"`
	Remote      string     `json:"remote"`
	Via         string     `json:"via"` // --via's SSH server, user@host:port; "" without
	Started     time.Time  `json:"started"`
	Ended       time.Time  `json:"ended"`
	Connections []Record   `json:"connections"`
	Dropped     uint64     `json:"dropped"`
	Totals      Totals     `json:"totals"`
	Pool        pool.Stats `json:"pool"`
}

// DefaultMaxRecords is how many closed connections a session keeps for its
// summary when NewRing is given no bound; older ones only count in Totals.
const DefaultMaxRecords = 1000

// Ring keeps the last max closed connections, so a week-long session does
// not grow without bound, and counts the ones it let go. It is safe for
// concurrent use.
type Ring struct {
	mu      sync.Mutex
	ring    []Record
	next    int // the oldest record once the ring is full: the next to go
	dropped uint64
	max     int
}

// NewRing returns a Ring of max records; 0 or less means DefaultMaxRecords.
func NewRing(max int) *Ring {
	if max <= 0 {
		max = DefaultMaxRecords
	}
	return &Ring{max: max}
}

// Add keeps rec, letting the oldest record go when the ring is full.
func (r *Ring) Add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) < r.max {
		r.ring = append(r.ring, rec)
		return
	}
	r.ring[r.next] = rec
	r.next = (r.next + 1) % r.max
	r.dropped++
}

// Snapshot returns the kept records in ID order and how many were dropped.
func (r *Ring) Snapshot() ([]Record, uint64) {
	r.mu.Lock()
	out := make([]Record, len(r.ring))
	copy(out, r.ring)
	dropped := r.dropped
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.ID, b.ID) })
	return out, dropped
}

// Millis is a duration in milliseconds as records show it: to the
// microsecond.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
