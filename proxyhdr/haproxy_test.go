//go:build unix

package proxyhdr

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// haproxy is a real HAProxy with accept-proxy, in front of a backend that
// answers "SRC DST PAYLOAD\n": what HAProxy took from our header.
type haproxy struct{ *testsrv.HAProxy }

func startHAProxy(t *testing.T) haproxy {
	t.Helper()
	return haproxy{testsrv.StartHAProxy(t)}
}

// send writes raw (a header, or garbage) and a payload line to HAProxy,
// and returns the backend's answer, the client's own address, and HAProxy's
// address.
func (h haproxy) send(t *testing.T, raw []byte) (answer, self, peer string) {
	t.Helper()
	c, err := net.Dial("tcp", h.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(raw, "hello\n"...)); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c) // EOF or a reset: either way the answer is what came
	return string(b), c.LocalAddr().String(), c.RemoteAddr().String()
}

func TestHAProxyAcceptsHeader(t *testing.T) {
	h := startHAProxy(t)
	for _, tt := range headerCases {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Header(tt.v, tt.client, tt.local)
			if err != nil {
				t.Fatal(err)
			}
			answer, self, peer := h.send(t, b)
			want := fmt.Sprintf("%s %s hello\n", tt.src, tt.dst)
			if tt.src == "" {
				// Unknown origin: HAProxy falls back to the connection's
				// own addresses.
				want = fmt.Sprintf("%s %s hello\n", self, peer)
			}
			if normalize(answer) != normalize(want) {
				t.Errorf("backend answered %q; want %q", answer, want)
			}
		})
	}
}

// HAProxy is strict: a header that is not one never reaches the backend,
// so the acceptance above means something.
func TestHAProxyRejectsBadHeader(t *testing.T) {
	h := startHAProxy(t)
	good, err := Header(V2, client4, local4)
	if err != nil {
		t.Fatal(err)
	}
	truncated := append([]byte{}, good...)
	truncated[15] = 200 // a v2 length longer than what follows
	for name, raw := range map[string][]byte{
		"no header":     nil,
		"v1 no port":    []byte("PROXY TCP4 203.0.113.7 198.51.100.1 4242\r\n"),
		"v2 bad length": truncated,
	} {
		t.Run(name, func(t *testing.T) {
			before := h.Backend()
			if answer, _, _ := h.send(t, raw); answer != "" {
				t.Errorf("backend answered %q; want the connection closed unanswered", answer)
			}
			if got := h.Backend() - before; got != 0 {
				t.Errorf("backend accepted %d connections; want 0", got)
			}
		})
	}
}

// normalize writes an answer's addresses unmapped: net.IP prints an
// IPv4-mapped address as IPv4, so a mixed-family header's mapped source
// comes back from the backend that way.
func normalize(answer string) string {
	f := strings.SplitN(answer, " ", 3)
	for i := 0; i < 2 && i < len(f); i++ {
		if ap, err := netip.ParseAddrPort(f[i]); err == nil {
			f[i] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
	}
	return strings.Join(f, " ")
}

func TestLocalAddr(t *testing.T) {
	ln, err := net.Listen("tcp", ":0") // wildcard: the listener's own address says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rc, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got netip.AddrPort
	rc.Control(func(fd uintptr) { got, err = LocalAddr(int(fd)) })
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	if err != nil || got.Addr().Unmap() != want.Addr() || got.Port() != want.Port() {
		t.Errorf("LocalAddr = %v, %v; want %v", got, err, want)
	}
	if !strings.Contains(c.RemoteAddr().String(), fmt.Sprint(port)) {
		t.Errorf("client's peer %s; want port %d", c.RemoteAddr(), port)
	}
}
