//go:build unix

package proxyhdr

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// LocalAddr is the local address of an accepted socket, for Header on the
// forwarder's raw accept path: on a wildcard or dual-stack listener it is
// not the listener's address. One getsockname(2).
func LocalAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, nil // a Unix socket: no address, an unknown origin
}
