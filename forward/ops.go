package forward

// What a forwarder needs once it runs for long or for more than one person,
// each in one place, hooked into the pair's life at one point:
//
//   - admission (--allow): admit, right after accept, before a pair, a pool
//     borrow or a record exists; a denied client gets a reset and counts in
//     Totals.Denied only.
//   - the PROXY protocol header (--proxy-protocol): sendHeader, when a client
//     is attached to an upstream (relay) and again on a replay's fresh
//     upstream (replace); never at pre-dial, since a warm connection has no
//     client yet. Its bytes are not the client's: no byte count sees them.
//   - failover candidates (REMOTE a,b,...): dial asks the candidate Set,
//     which calls dialOne (upstream.go) for one candidate at a time; the
//     pool, warm dials included, only ever sees dial. dialOne reaches a
//     candidate as a socket of ours or through Config.DialStream, which gets
//     the candidate, so every one is dialed its own way (its own TLS name).
//   - a passed listener (LOCAL systemd): adopt, instead of listen.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/warmport/warmport/allowlist"
	"github.com/warmport/warmport/failover"
	"github.com/warmport/warmport/pool"
)

// ops is the Forwarder's state for the features above.
type ops struct {
	denied   atomic.Uint64
	reporter *allowlist.Reporter // nil without Config.Allow
	remotes  *failover.Set[upConn]
	// flushPool is the pool, once New made it, for OnUp.
	flushPool atomic.Pointer[pool.Pool[upConn]]
}

// initOps sets up what New needs before it listens and dials.
func (f *Forwarder) initOps() error {
	logf := f.cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if f.cfg.Allow != nil {
		f.reporter = allowlist.NewReporter(logf, 0)
	}
	cands, err := failover.Split(f.cfg.Remote)
	if err != nil {
		return err
	}
	for _, c := range cands {
		if _, ok := unixPath(c); ok && !UnixSockets {
			return errNoUnix
		}
	}
	f.remotes = failover.New[upConn](cands, logf)
	// A better candidate is back: the idle connections are to a worse one.
	f.remotes.OnUp = func(string) {
		if p := f.flushPool.Load(); p != nil {
			p.Flush()
		}
	}
	return nil
}

// dial reaches the first healthy REMOTE candidate; it is the pool's dial
// function. A failure returns a nil upConn, never a typed nil.
func (f *Forwarder) dial(ctx context.Context) (upConn, error) {
	c, _, err := f.remotes.Dial(ctx, f.dialOne)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// admit lets c through unless Config.Allow denies it; a denied client is
// reset, reported and counted, and nothing else of it is kept.
func (f *Forwarder) admit(c *sock) bool {
	if f.cfg.Allow == nil {
		return true
	}
	client := c.RemoteAddr()
	if ta, ok := client.(*net.TCPAddr); ok && f.cfg.Allow.Allows(ta.AddrPort().Addr()) {
		return true
	}
	f.denied.Add(1)
	resetClose(c)
	f.reporter.Denied(clientName{client})
	return false
}

// clientName prints a client as records do: an IPv4-mapped address as IPv4.
type clientName struct{ net.Addr }

func (c clientName) String() string {
	if ta, ok := c.Addr.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return c.Addr.String()
}

// errShortHeader: the PROXY header did not fit in the socket at once,
// which a fresh or idle upstream's empty send buffer always allows.
var errShortHeader = errors.New("PROXY protocol header: short write")

// sendHeader writes p's PROXY protocol header to up, if Config asks for one.
func (f *Forwarder) sendHeader(p *pair, up upConn) error {
	if f.cfg.ProxyProtocol == 0 {
		return nil
	}
	b, err := proxyHeader(f.cfg.ProxyProtocol, p.client)
	if err != nil {
		return err
	}
	if s, ok := up.(Stream); ok {
		// Inside TLS or the SSH channel: the header is REMOTE's first
		// application bytes, as a direct client's would be.
		s.SetWriteDeadline(time.Now().Add(f.dialTimeout()))
		defer s.SetWriteDeadline(time.Time{})
		n, err := s.Write(b)
		if err == nil && n != len(b) {
			err = errShortHeader
		}
		return err
	}
	return writeHeader(up.(*sock), b)
}

// replace is the pool's Replace for p's replay, with p's PROXY header on
// the fresh upstream before the replayed bytes.
func (f *Forwarder) replace(p *pair) (upConn, time.Duration, error) {
	c, d, err := f.pool.Replace(f.hardCtx)
	if err == nil {
		if err = f.sendHeader(p, c); err != nil {
			c.Close()
			c = nil
		}
	}
	return c, d, err
}

// adopt takes Config.Listener, a socket someone else listens on (systemd):
// its path, if a Unix socket, is theirs, never removed here.
func (f *Forwarder) adopt(ln net.Listener) (net.Listener, error) {
	switch l := ln.(type) {
	case *net.TCPListener:
		f.ln = l
	case *net.UnixListener:
		if !UnixSockets {
			return nil, errNoUnix
		}
		l.SetUnlinkOnClose(false)
		f.localUnix = "unix:" + l.Addr().String()
	default:
		return nil, errors.New("forward: Config.Listener must be a *net.TCPListener or a *net.UnixListener")
	}
	return ln, nil
}
