package forward

import (
	"errors"
	"time"

	"github.com/warmport/warmport/recycle"
)

func isNoReset(err error) bool { return errors.Is(err, recycle.ErrNoReset) }

// Recycling (--reuse PROTO). Bytes alone cannot tell that a reply is still
// coming or that the server holds state for the client, so a pair with a
// protocol relays through user space (read and write, never splice) and
// feeds every byte, both ways, to the protocol's tracker. At the client's
// clean EOF, with every byte it sent through, the upstream is recycled only
// if the tracker proves a clean boundary (every request answered in full,
// no state left but what the protocol's reset clears) and the server can
// reset (learnt at the first recycle: a server without the command recycles
// nothing for the rest of the session); the pool then refuses it if any
// byte is unread on its socket. Otherwise the pair goes on as in default
// mode: the EOF is passed on (half-close), and it ends when both directions
// have.

// track feeds b, relayed to the upstream (toUp) or to the client, to p's
// tracker, before b is written on: a response is never seen before the
// request it answers. The copier calls it from both directions.
func (p *pair) track(toUp bool, b []byte) {
	p.trackMu.Lock()
	if toUp {
		p.tracker.Request(b)
	} else {
		p.tracker.Response(b)
	}
	p.trackMu.Unlock()
}

// mayRecycle: the client ended cleanly and every byte it sent is through;
// may its upstream go to another client?
func (p *pair) mayRecycle() bool {
	if p.tracker == nil || p.f.noReset.Load() || p.upStream.Load() != nil {
		return false
	}
	p.trackMu.Lock()
	defer p.trackMu.Unlock()
	return p.tracker.Clean()
}

// reuseUpstream resets up (the protocol's reset request, its reply checked
// within the dial timeout) and offers it to the pool, which takes it only if
// it is alive with nothing unread. A reset that fails closes up; one the
// server does not know stops recycling for the session. The reset's round
// trip runs in a goroutine of its own, never on the event loop.
func (f *Forwarder) reuseUpstream(up *sock) {
	req := f.cfg.Reuse.ResetRequest()
	if req == nil {
		f.pool.Put(up)
		return
	}
	f.resets.Add(1)
	go func() {
		defer f.resets.Done()
		err := resetExchange(up, req, f.cfg.Reuse.CheckReset, time.Now().Add(f.dialTimeout()))
		if err != nil {
			if isNoReset(err) {
				f.noReset.Store(true)
			}
			up.Close()
			return
		}
		f.pool.Put(up)
	}()
}
