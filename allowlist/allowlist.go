// Package allowlist decides, right after accept, whether a client may use the
// forwarder (--allow CIDR[,CIDR...]), closes the ones it may not with a reset,
// and reports them without letting a scan flood the terminal.
package allowlist

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// List is a set of client addresses. A nil *List allows everyone, which is
// what no --allow means.
type List struct {
	set      *netipx.IPSet // merged, sorted ranges: one binary search per client
	prefixes []netip.Prefix
}

// Parse reads every --allow value (the flag is repeatable, each value a
// comma-separated list). A bare IP is a /32 or /128. An IPv4-mapped IPv6
// rule (::ffff:10.0.0.0/104) means its IPv4 prefix, as a mapped client
// means its IPv4 address. No values: nil, everyone allowed.
func Parse(values []string) (*List, error) {
	var b netipx.IPSetBuilder
	var prefixes []netip.Prefix
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			p, err := parseOne(item)
			if err != nil {
				return nil, err
			}
			prefixes = append(prefixes, p)
			b.AddPrefix(p)
		}
	}
	if len(prefixes) == 0 {
		return nil, nil
	}
	set, err := b.IPSet()
	if err != nil { // only for invalid prefixes, which parseOne rejected
		return nil, err
	}
	return &List{set: set, prefixes: prefixes}, nil
}

func parseOne(s string) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || strings.Contains(s, "%") { // a zone names an interface, not addresses
		return netip.Prefix{}, fmt.Errorf("--allow %q is not a CIDR or an IP address: give e.g. --allow 10.0.0.0/8,192.168.1.5", s)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Allows reports whether client may connect. An IPv4-mapped IPv6 client
// (a dual-stack listener's view of an IPv4 peer) matches IPv4 rules; a
// zone (fe80::1%eth0) is ignored.
func (l *List) Allows(client netip.Addr) bool {
	if l == nil {
		return true
	}
	return l.set.Contains(client.WithZone("").Unmap())
}

// String lists the rules as given (normalized), for a ready line or a
// summary: "10.0.0.0/8,192.168.1.5/32".
func (l *List) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// AdmitConn is the forwarder's check for a client it accepted as a
// net.Conn: true lets it through; false means it was denied, reported
// through r (if not nil) and closed with a reset, and the caller counts it
// in totals.denied and forgets it. With a List, a client without an IP
// address (a Unix socket's) is denied: the list cannot vouch for it.
func (l *List) AdmitConn(c net.Conn, r *Reporter) bool {
	if l == nil {
		return true
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if ok && l.Allows(ta.AddrPort().Addr()) {
		return true
	}
	if r != nil {
		r.Denied(c.RemoteAddr())
	}
	Reject(c)
	return false
}
