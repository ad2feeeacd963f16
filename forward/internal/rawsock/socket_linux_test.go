package rawsock

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"
)

// TestSocketAddress: the peer's address (IPv4, IPv6, IPv4-mapped kept apart)
// survives the compact form a Socket
// keeps it in, as RemoteAddr (net.TCPAddr's form) and as Peer (records'
// form, an IPv4-mapped address as IPv4).
func TestSocketAddress(t *testing.T) {
	tests := []struct {
		name, raddr, unix string
		wantRemote        string
		wantPeer          string
	}{
		{name: "ipv4", raddr: "127.0.0.1:8080", wantRemote: "127.0.0.1:8080", wantPeer: "127.0.0.1:8080"},
		{name: "ipv6", raddr: "[2001:db8::7]:443", wantRemote: "[2001:db8::7]:443", wantPeer: "[2001:db8::7]:443"},
		{name: "ipv4-mapped", raddr: "[::ffff:10.0.0.1]:80", wantRemote: "10.0.0.1:80", wantPeer: "10.0.0.1:80"},
		{name: "port 0", raddr: "10.1.2.3:0", wantRemote: "10.1.2.3:0", wantPeer: "10.1.2.3:0"},
		{name: "unix", unix: "unix:/run/db.sock", wantRemote: "unix:/run/db.sock", wantPeer: "unix:/run/db.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ap netip.AddrPort
			if tt.raddr != "" {
				ap = netip.MustParseAddrPort(tt.raddr)
			}
			s := New(-1, ap, tt.unix)
			if got := s.RemoteAddr().String(); got != tt.wantRemote {
				t.Errorf("RemoteAddr() = %s; want %s", got, tt.wantRemote)
			}
			if ta, ok := s.RemoteAddr().(*net.TCPAddr); ok && ta.AddrPort() != ap {
				t.Errorf("RemoteAddr().AddrPort() = %v; want %v", ta.AddrPort(), ap)
			}
			if got := s.Peer(); got != tt.wantPeer {
				t.Errorf("Peer() = %s; want %s", got, tt.wantPeer)
			}
		})
	}
}

// TestSocketSize: an idle pair holds two Sockets; 48 bytes is their size
// class (the next is 64).
func TestSocketSize(t *testing.T) {
	if got := unsafe.Sizeof(Socket{}); got > 48 {
		t.Fatalf("Socket is %d bytes; want at most 48", got)
	}
}
