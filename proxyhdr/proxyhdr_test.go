package proxyhdr

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{"v1", V1, false}, {"v2", V2, false},
		{"1", 0, true}, {"V1", 0, true}, {"v3", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseVersion(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ParseVersion(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				msg := err.Error()
				if !strings.Contains(msg, "use v1 or v2") || !strings.Contains(msg, `"`+tt.in+`"`) || strings.Contains(msg, "\n") {
					t.Errorf("error %q; want one line naming %q and the choices", msg, tt.in)
				}
			}
		})
	}
}

var (
	client4 = netip.MustParseAddrPort("203.0.113.7:4242")
	local4  = netip.MustParseAddrPort("198.51.100.1:8080")
	client6 = netip.MustParseAddrPort("[2001:db8::7]:4242")
	local6  = netip.MustParseAddrPort("[2001:db8::1]:8080")
	mapped  = netip.MustParseAddrPort("[::ffff:203.0.113.7]:4242")
	mappedL = netip.MustParseAddrPort("[::ffff:198.51.100.1]:8080")
)

// headerCases are the clients a forwarder meets, with what a consumer must
// learn from each header: the source and destination (empty for an unknown
// origin) and, for v1, the exact text.
var headerCases = []struct {
	name          string
	v             Version
	client, local netip.AddrPort
	src, dst      string
	v1Text        string
}{
	{"v1 TCP4", V1, client4, local4, "203.0.113.7:4242", "198.51.100.1:8080", "PROXY TCP4 203.0.113.7 198.51.100.1 4242 8080\r\n"},
	{"v1 TCP6", V1, client6, local6, "[2001:db8::7]:4242", "[2001:db8::1]:8080", "PROXY TCP6 2001:db8::7 2001:db8::1 4242 8080\r\n"},
	{"v1 mapped is TCP4", V1, mapped, mappedL, "203.0.113.7:4242", "198.51.100.1:8080", "PROXY TCP4 203.0.113.7 198.51.100.1 4242 8080\r\n"},
	{"v1 mixed is TCP6", V1, client4, local6, "[::ffff:203.0.113.7]:4242", "[2001:db8::1]:8080", "PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 4242 8080\r\n"},
	{"v1 unix client is UNKNOWN", V1, netip.AddrPort{}, local4, "", "", "PROXY UNKNOWN\r\n"},
	{"v2 TCP4", V2, client4, local4, "203.0.113.7:4242", "198.51.100.1:8080", ""},
	{"v2 TCP6", V2, client6, local6, "[2001:db8::7]:4242", "[2001:db8::1]:8080", ""},
	{"v2 mapped is TCP4", V2, mapped, mappedL, "203.0.113.7:4242", "198.51.100.1:8080", ""},
	{"v2 unix client is LOCAL", V2, netip.AddrPort{}, netip.AddrPort{}, "", "", ""},
}

// A strict parser (go-proxyproto's reader) reads back exactly what was
// meant, and nothing past the header.
func TestHeaderParses(t *testing.T) {
	for _, tt := range headerCases {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Header(tt.v, tt.client, tt.local)
			if err != nil {
				t.Fatalf("Header: %v", err)
			}
			if tt.v1Text != "" && string(b) != tt.v1Text {
				t.Errorf("v1 header %q; want %q", b, tt.v1Text)
			}
			r := bufio.NewReader(io.MultiReader(bytes.NewReader(b), strings.NewReader("client bytes")))
			h, err := proxyproto.Read(r)
			if err != nil {
				t.Fatalf("proxyproto.Read(%q): %v", b, err)
			}
			if got := h.Version; got != byte(tt.v) {
				t.Errorf("version %d; want %d", got, tt.v)
			}
			if tt.src == "" {
				if h.Command != proxyproto.LOCAL || h.TransportProtocol != proxyproto.UNSPEC {
					t.Errorf("command %v, protocol %v; want LOCAL, UNSPEC", h.Command, h.TransportProtocol)
				}
			} else {
				src, dst, ok := h.TCPAddrs()
				if !ok || h.Command != proxyproto.PROXY {
					t.Fatalf("header %+v; want a PROXY TCP header", h)
				}
				if got := src.AddrPort().String(); got != tt.src {
					t.Errorf("source %s; want %s", got, tt.src)
				}
				if got := dst.AddrPort().String(); got != tt.dst {
					t.Errorf("destination %s; want %s", got, tt.dst)
				}
			}
			if rest, _ := io.ReadAll(r); string(rest) != "client bytes" {
				t.Errorf("after the header: %q; want %q", rest, "client bytes")
			}
		})
	}
}

func TestHeaderBadVersion(t *testing.T) {
	if _, err := Header(0, client4, local4); err == nil {
		t.Errorf("Header(0, ...) = nil error; want one")
	}
}

// Over a real socket, into go-proxyproto's listener: the server sees the
// client's address from the header (not 127.0.0.1) and the client's bytes
// exactly.
func TestWriteOverSocket(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		t.Run(v.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			pl := &proxyproto.Listener{Listener: ln, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
			defer pl.Close()
			type result struct {
				remote string
				data   string
				err    error
			}
			got := make(chan result, 1)
			go func() {
				c, err := pl.Accept()
				if err != nil {
					got <- result{err: err}
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				data, err := io.ReadAll(c)
				got <- result{c.RemoteAddr().String(), string(data), err}
			}()

			// The forwarder's view: a client conn whose addresses go in the
			// header, and an upstream conn the header goes to.
			up, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			if err := Write(up, v, fakeConn{client4, local4}); err != nil {
				t.Fatalf("Write: %v", err)
			}
			io.WriteString(up, "GET / HTTP/1.0\r\n\r\n")
			up.(*net.TCPConn).CloseWrite()
			select {
			case r := <-got:
				if r.err != nil {
					t.Fatalf("server: %v", r.err)
				}
				if r.remote != client4.String() {
					t.Errorf("server saw client %s; want %s", r.remote, client4)
				}
				if r.data != "GET / HTTP/1.0\r\n\r\n" {
					t.Errorf("server read %q; want the client's bytes only", r.data)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server got nothing within 5 s")
			}
		})
	}
}

// fakeConn is a client connection as far as Write looks at it.
type fakeConn struct {
	remote, local netip.AddrPort
}

func (c fakeConn) RemoteAddr() net.Addr           { return net.TCPAddrFromAddrPort(c.remote) }
func (c fakeConn) LocalAddr() net.Addr            { return net.TCPAddrFromAddrPort(c.local) }
func (fakeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (fakeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

func TestHeaderForUnixClient(t *testing.T) {
	b, err := HeaderFor(V1, &net.UnixAddr{Name: "@", Net: "unix"}, &net.UnixAddr{Name: "/run/db.sock", Net: "unix"})
	if err != nil || string(b) != "PROXY UNKNOWN\r\n" {
		t.Errorf("HeaderFor(unix) = %q, %v; want %q", b, err, "PROXY UNKNOWN\r\n")
	}
}
