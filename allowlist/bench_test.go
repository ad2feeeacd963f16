package allowlist

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// rules returns n distinct rules: /24s of IPv4 and, one in four, /48s of
// IPv6, as a long allow-list of office and VPN ranges would look.
func rules(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		if i%4 == 3 {
			out[i] = fmt.Sprintf("2001:db8:%x::/48", r.IntN(1<<16))
		} else {
			out[i] = fmt.Sprintf("10.%d.%d.0/24", r.IntN(256), r.IntN(256))
		}
	}
	return out
}

// clients mixes allowed and denied IPv4, mapped and IPv6 addresses.
func clients() []netip.Addr {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([]netip.Addr, 256)
	for i := range out {
		switch i % 3 {
		case 0:
			out[i] = netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), 7})
		case 1:
			out[i] = netip.AddrFrom16(netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), 1, 1}).As16())
		default:
			out[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", r.IntN(1<<16)))
		}
	}
	return out
}

// BenchmarkAllows is the per-connection cost of --allow.
func BenchmarkAllows(b *testing.B) {
	cs := clients()
	for _, n := range []int{1, 1000} {
		l, err := Parse(rules(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("ipset/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				l.Allows(cs[i&255])
			}
		})
		// The naive alternative, for comparison: a scan of the prefixes.
		b.Run(fmt.Sprintf("scan/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				a := cs[i&255].Unmap()
				for _, p := range l.prefixes {
					if p.Contains(a) {
						break
					}
				}
			}
		})
	}
}
