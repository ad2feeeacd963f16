// Package recycle decides, from the bytes a relay already moves, whether an upstream
// connection may be handed to another client once its client is done (--reuse PROTO).
//
// Bytes alone cannot tell that a reply is still coming or that the server holds state for
// the client, so each Protocol parses its framing exactly enough to prove a boundary:
// every request answered in full, nothing partial either way, no state that outlives the
// client except what the protocol's ResetRequest clears. Anything the parser does not
// understand, or that exceeds its bounds, makes the connection unclean for good: a
// connection that is closed costs one dial, one that is reused wrongly hands a reply to
// the wrong client.
//
// A Tracker is fed every chunk of a pair in both directions, so it allocates nothing per
// call in steady state, keeps bounded memory and scans each byte a small constant number
// of times.
package recycle

import (
	"errors"
	"fmt"
)

// ErrNoReset is returned (possibly wrapped) by CheckReset when the server does not know the
// reset command; the caller then stops recycling for the whole session.
var ErrNoReset = errors.New("recycle: server cannot reset connection state")

// Protocol is one protocol --reuse understands.
type Protocol interface {
	// Name is the name --reuse takes.
	Name() string
	// NewTracker returns a Tracker for one upstream connection, fresh from its dial or reset.
	NewTracker() Tracker
	// ResetRequest is written to the upstream before it is reused (nil: nothing to reset).
	// CheckReset parses the reply read so far: done=false means read more; err != nil means
	// never reuse this connection; errors.Is(err, ErrNoReset) means the server lacks the
	// command (the caller then stops recycling for the whole session).
	ResetRequest() []byte
	CheckReset(reply []byte) (done bool, err error)
}

// Tracker follows one upstream connection's traffic for as long as the connection lives,
// across the clients it serves, so that doubt outlives the client that caused it. (After a
// reset it may also be replaced by a fresh NewTracker; the reset exchange itself is never
// fed to it.)
//
// Request and Response may be called from different goroutines (one per direction);
// Clean from any. Feed each chunk before passing it on: a response the tracker sees
// before the request it answers is taken for one nobody asked for, which is doubtful.
type Tracker interface {
	// Request is given every byte the client sends, in order, as relayed (any chunking).
	Request(b []byte)
	// Response is given every byte the upstream sends, in order (any chunking).
	Response(b []byte)
	// Clean: the connection is at a boundary where it may go to another client: every
	// request got its complete response, nothing partial either way, no server-side state
	// that outlives the client (other than what ResetRequest clears). Anything doubtful or
	// unparseable is false, and stays false for the rest of the connection (sticky).
	Clean() bool
}

// maxLine bounds any line or header the trackers buffer; a longer one is doubtful.
const maxLine = 64 << 10

var protocols = []Protocol{HTTP, Redis}

// Names lists the protocols Lookup knows, for help and errors.
func Names() []string {
	names := make([]string, len(protocols))
	for i, p := range protocols {
		names[i] = p.Name()
	}
	return names
}

// Lookup returns the protocol named by --reuse.
func Lookup(name string) (Protocol, error) {
	for _, p := range protocols {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("unknown protocol %q: choose http or redis", name)
}
