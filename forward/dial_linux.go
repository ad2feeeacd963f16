package forward

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/warmport/warmport/forward/internal/rawsock"
)

// lookupNetIP resolves a host name; tests replace it.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// dialRemote dials remote, one REMOTE candidate, within DialTimeout.
func (f *Forwarder) dialRemote(ctx context.Context, remote string) (*sock, error) {
	growStack() // in a client's goroutine or the pool's background dialer
	deadline := time.Now().Add(f.dialTimeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if path, ok := unixPath(remote); ok {
		return rawsock.DialUnix(ctx, path, remote)
	}
	addrs, err := f.resolve(ctx, remote)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	keepalive := keepAlive(remote) >= 0
	return rawsock.DialTCP(ctx, addrs, deadline, keepalive)
}

// resolve returns remote's addresses: an IP literal as is (parsed once for
// a single REMOTE), a name looked up on every dial, as Go's Dialer does.
// Callers only read the slice.
func (f *Forwarder) resolve(ctx context.Context, remote string) ([]netip.AddrPort, error) {
	single := remote == f.cfg.Remote
	if lit := f.literal.Load(); lit != nil && single {
		return *lit, nil
	}
	host, portStr, err := net.SplitHostPort(remote)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		lit := []netip.AddrPort{netip.AddrPortFrom(ip, uint16(port))}
		if single {
			f.literal.Store(&lit)
		}
		return lit, nil
	}
	ips, err := lookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return out, nil
}
