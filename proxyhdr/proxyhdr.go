// Package proxyhdr builds the PROXY protocol header (HAProxy's, v1 text or v2
// binary) that tells REMOTE which client a connection is for: the forwarder
// writes it to the upstream when a client is attached, before the client's
// first byte.
//
// The encoding is github.com/pires/go-proxyproto's: it is kept, follows the
// spec to the letter (v2 lengths, v1's UNKNOWN short form) and costs well
// under a microsecond per header (BenchmarkHeader).
package proxyhdr

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// Version is the PROXY protocol version; 0 means no header.
type Version byte

const (
	V1 Version = 1 // text: "PROXY TCP4 1.2.3.4 5.6.7.8 40000 8080\r\n"
	V2 Version = 2 // binary, 28 bytes for IPv4, 52 for IPv6
)

// ParseVersion reads --proxy-protocol's value.
func ParseVersion(s string) (Version, error) {
	switch s {
	case "v1":
		return V1, nil
	case "v2":
		return V2, nil
	}
	return 0, fmt.Errorf("--proxy-protocol %q is not a version: use v1 or v2", s)
}

func (v Version) String() string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("v%d", byte(v))
}

// Header returns the header for a client at client that reached the
// forwarder at local (the accepted socket's own address, which differs from
// the listener's on a wildcard bind). An invalid client (a Unix-socket
// client has no IP address) gives the header for "unknown origin": v1
// "PROXY UNKNOWN", v2 LOCAL, after which the consumer uses the
// connection's own addresses. IPv4-mapped addresses are sent as IPv4, as
// the client really is one.
func Header(v Version, client, local netip.AddrPort) ([]byte, error) {
	if v != V1 && v != V2 {
		return nil, fmt.Errorf("proxyhdr: version %d", byte(v))
	}
	h := &proxyproto.Header{Version: byte(v), Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if client.IsValid() && local.IsValid() {
		src, dst := client.Addr().Unmap(), local.Addr().Unmap()
		h.Command, h.TransportProtocol = proxyproto.PROXY, proxyproto.TCPv4
		if !src.Is4() || !dst.Is4() {
			// One IPv6 end makes both IPv6 (the IPv4 one mapped), as a
			// header has one family.
			h.TransportProtocol = proxyproto.TCPv6
			src, dst = netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16())
		}
		h.SourceAddr = &net.TCPAddr{IP: src.AsSlice(), Port: int(client.Port())}
		h.DestinationAddr = &net.TCPAddr{IP: dst.AsSlice(), Port: int(local.Port())}
	}
	return h.Format()
}

// HeaderFor is Header for net.Addr values, as a net.Conn's RemoteAddr and
// LocalAddr give them: *net.TCPAddr ends carry addresses, anything else
// (a *net.UnixAddr) is an unknown origin.
func HeaderFor(v Version, client, local net.Addr) ([]byte, error) {
	return Header(v, addrPort(client), addrPort(local))
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// Write writes c's header to upstream in one call. A short write is an
// error (io.ErrShortWrite): the header must reach REMOTE whole before any
// client byte does, and its bytes are not the client's (byte counts leave
// them out).
func Write(upstream io.Writer, v Version, c net.Conn) error {
	b, err := HeaderFor(v, c.RemoteAddr(), c.LocalAddr())
	if err != nil {
		return err
	}
	n, err := upstream.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}
