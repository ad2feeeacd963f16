package forward

import (
	"context"
	"net"
)

// The upstream side: how an upstream is reached, probed on borrow and
// relayed. An upstream is one of two kinds:
//
//   - a socket of the forwarder's own (*sock: TCP or Unix), dialed by
//     dialRemote. The pool peeks at it (SyscallConn), the replay rule asks
//     its kernel what was consumed, --reuse may recycle it, and on Linux the
//     event loop splices it.
//   - a Stream, dialed by Config.DialStream (TLS, an SSH channel): it probes
//     itself (Probe), the copier relays it, a replay happens only if none of
//     the client's bytes was written to it, and it is never recycled (the
//     pool cannot prove it clean).

// Stream is an upstream that is not one of the forwarder's sockets: a TLS
// connection, an SSH channel. Both ends of such a pair are relayed by the
// copier.
type Stream interface {
	net.Conn // Read, Write, Close (a clean close), RemoteAddr as records name it; deadlines may be unsupported
	// CloseWrite passes the client's EOF on: a TLS close_notify, an SSH
	// channel's EOF.
	CloseWrite() error
	// Abort closes with a reset, never a clean end: a pair that ended in
	// error must not look whole to the server.
	Abort() error
	// Probe tells, without waiting, whether an idle upstream may be handed
	// to a client: nil alive (a greeting it holds is returned by Read
	// first), an error dead. The pool calls it on borrow.
	Probe() error
}

// upConn is an upstream as the pool holds it: a *sock or a Stream.
type upConn interface{ Close() error }

// dialOne reaches remote, one candidate of REMOTE, once, within the dial
// timeout: a Stream through Config.DialStream if set, else a socket of our
// own. A failure returns a nil upConn, never a typed nil. The pool dials
// through dial (ops.go), which picks the candidate.
func (f *Forwarder) dialOne(ctx context.Context, remote string) (upConn, error) {
	if f.cfg.DialStream != nil {
		ctx, cancel := context.WithTimeout(ctx, f.dialTimeout())
		defer cancel()
		s, err := f.cfg.DialStream(ctx, remote)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := f.dialRemote(ctx, remote)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// setUpstream makes up p's upstream; the caller holds p.mu or is the only
// one who can see p yet.
func (p *pair) setUpstream(up upConn) {
	switch up := up.(type) {
	case *sock:
		p.upstream.Store(up)
	case Stream:
		p.upStream.Store(&up)
	}
}

// closeUpstream closes p's upstream cleanly.
func (p *pair) closeUpstream() {
	if up := p.upstream.Load(); up != nil {
		up.Close()
	}
	if s := p.upStream.Load(); s != nil {
		(*s).Close()
	}
}

// upstreamAddr is up's peer as its record shows it.
func upstreamAddr(up upConn) string {
	if s, ok := up.(*sock); ok {
		return remoteAddr(s)
	}
	return up.(Stream).RemoteAddr().String()
}
