package testsrv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// HAProxy is a real HAProxy with accept-proxy on its bind line, in front of
// a backend that learns the client from HAProxy's own header
// (send-proxy-v2) and answers each connection's first line with "SRC DST
// LINE": what it prints is what HAProxy took from the header it was sent.
// HAProxy drops a connection whose header is missing or malformed, so an
// answer proves it parsed one.
type HAProxy struct {
	Addr    string       // HAProxy's front, HOST:PORT
	backend atomic.Int64 // connections that reached the backend
}

// StartHAProxy runs HAProxy and its backend until the test ends.
func StartHAProxy(t testing.TB) *HAProxy {
	t.Helper()
	bin := Need(t, "haproxy", "haproxy")
	h := &HAProxy{}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	go h.serveBackend(back)

	h.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := fmt.Sprintf(`global
    log stderr format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s accept-proxy
    default_backend be
backend be
    server s1 %s send-proxy-v2
`, h.Addr, back.Addr())
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := MustStart(t, exec.Command(bin, "-f", cfg, "-db"), "")
	// HAProxy prints nothing when it is ready: wait (bounded) until it
	// answers a connection, or exits.
	deadline := time.Now().Add(Timeout)
	for {
		if c, err := net.Dial("tcp", h.Addr); err == nil {
			c.Close()
			return h
		}
		select {
		case <-p.Exited():
			t.Fatalf("haproxy exited:\n%s", p.Output())
		case <-time.After(10 * time.Millisecond): // another process's port: nothing to wait on
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not listening on %s within %v:\n%s", h.Addr, Timeout, p.Output())
		}
	}
}

func (h *HAProxy) serveBackend(ln net.Listener) {
	pl := &proxyproto.Listener{Listener: ln, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
	for {
		c, err := pl.Accept()
		if err != nil {
			return
		}
		h.backend.Add(1)
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(Timeout))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				fmt.Fprintf(c, "%s %s %s", c.RemoteAddr(), c.LocalAddr(), line)
			}
		}()
	}
}

// Backend is how many connections reached the backend: each one HAProxy
// took a header from.
func (h *HAProxy) Backend() int64 { return h.backend.Load() }
