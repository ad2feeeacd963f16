package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/warmport/warmport/internal/testsrv"
)

// haproxyFront is a real HAProxy with accept-proxy on its bind line in
// front of a backend that learns the client from HAProxy's own header
// (send-proxy-v2) and answers "SRC DST LINE": what it prints is what
// HAProxy took from warmport's header. HAProxy drops a connection whose
// header is missing or malformed, so an answer proves it parsed one.
type haproxyFront struct {
	addr    string
	backend atomic.Int64 // connections that reached the backend
}

func startHAProxyFront(t *testing.T) *haproxyFront {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy not found (install the Debian package haproxy): %v", err)
	}
	h := &haproxyFront{}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	go func() {
		pl := &proxyproto.Listener{Listener: back, Policy: func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }}
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			h.backend.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					fmt.Fprintf(c, "%s %s %s", c.RemoteAddr(), c.LocalAddr(), line)
				}
			}()
		}
	}()
	front := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
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
`, front, back.Addr())
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	// HAProxy prints nothing when it is ready: wait (bounded) until it
	// answers a connection, or exits.
	deadline := time.Now().Add(readyTimeout)
	for {
		if c, err := net.Dial("tcp", front); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("haproxy exited (%v):\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not listening on %s within %v:\n%s", front, readyTimeout, out.String())
		}
	}
	h.addr = front
	return h
}

// ask sends line on c and returns the backend's answer.
func askLine(t *testing.T, c net.Conn, line string) string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatalf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read the answer: %v (got %q)", err, b)
	}
	return string(b)
}

// HAProxy, with accept-proxy, takes warmport's header and reports the real
// client and the address it reached, on warm and cold upstreams, v1 and
// v2; for a Unix client (no address) it falls back to the connection's own.
func TestProxyProtocolThroughHAProxy(t *testing.T) {
	h := startHAProxyFront(t)
	for _, v := range []string{"v1", "v2"} {
		for _, warm := range []string{"0", "2"} {
			t.Run(v+" warm "+warm, func(t *testing.T) {
				p := startWarmport(t, "forward", "--json", "--proxy-protocol", v, "--warm", warm, "127.0.0.1:0", h.addr)
				addr := p.waitReady(t)
				if warm != "0" {
					p.waitPoolIdle(t, 2)
				}
				var clients []string
				for i := 0; i < 3; i++ {
					c, err := dialClient(addr)
					if err != nil {
						t.Fatal(err)
					}
					client := c.LocalAddr().String()
					clients = append(clients, client)
					line := fmt.Sprintf("hello %d\n", i)
					if got, want := askLine(t, c, line), fmt.Sprintf("%s %s %s", client, addr, line); got != want {
						t.Errorf("backend answered %q; want %q", got, want)
					}
				}
				s := parseSummary(t, p.stop(t).stdout)
				for _, client := range clients {
					r := s.record(t, client)
					wantSrc := "cold"
					if warm != "0" {
						wantSrc = "warm"
					}
					// Exact counts leave the header out: "hello N\n" up.
					if r.BytesUp != 8 || r.Source != wantSrc {
						t.Errorf("record %s: bytes_up %d, source %s; want 8, %s", client, r.BytesUp, r.Source, wantSrc)
					}
				}
			})
		}
		t.Run(v+" unix client", func(t *testing.T) {
			if !binaryHasUnix() {
				t.Skip("this build has no Unix sockets (TestUnixSockets checks it says so)")
			}
			path := filepath.Join(t.TempDir(), "s")
			p := startWarmport(t, "forward", "--proxy-protocol", v, "--warm", "0", "unix:"+path, h.addr)
			p.waitReady(t)
			c, err := net.DialTimeout("unix", path, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got := askLine(t, c, "hi\n")
			f := strings.Fields(got)
			// Unknown origin: HAProxy uses its own connection's addresses,
			// warmport's upstream socket and its own front.
			if len(f) != 3 || f[1] != h.addr || !strings.HasPrefix(f[0], "127.0.0.1:") || f[2] != "hi" {
				t.Errorf("backend answered %q; want \"127.0.0.1:PORT %s hi\"", got, h.addr)
			}
			p.stop(t)
		})
	}
}

// go-proxyproto's strict reader parses warmport's header, and every byte
// after it is the client's, in order, exactly once.
func TestProxyProtocolStrictParser(t *testing.T) {
	type seen struct {
		hdr  *proxyproto.Header
		rest []byte
		err  error
	}
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			got := make(chan seen, 16)
			up := startUpstream(t, func(c *net.TCPConn, _ func()) {
				c.SetDeadline(time.Now().Add(ioTimeout))
				br := bufio.NewReader(c)
				if _, err := br.Peek(1); err != nil {
					return // a warm connection closed unused at exit
				}
				hdr, err := proxyproto.Read(br)
				if err != nil {
					got <- seen{err: err}
					return
				}
				rest, err := io.ReadAll(br)
				got <- seen{hdr: hdr, rest: rest, err: err}
				c.Write([]byte("ok"))
			})
			p := startWarmport(t, "forward", "--json", "--proxy-protocol", v, "--warm", "1", "127.0.0.1:0", up.addr())
			addr := p.waitReady(t)
			p.waitPoolIdle(t, 1)
			payload := bytes.Repeat([]byte("0123456789"), 10000) // spans many reads
			c, err := dialClient(addr)
			if err != nil {
				t.Fatal(err)
			}
			client := c.LocalAddr().String()
			c.Write(payload)
			c.CloseWrite()
			if b, err := io.ReadAll(c); err != nil || string(b) != "ok" {
				t.Fatalf("client read %q, %v; want \"ok\"", b, err)
			}
			c.Close()
			var s seen
			select {
			case s = <-got:
			case <-time.After(ioTimeout):
				t.Fatal("upstream saw nothing")
			}
			if s.err != nil {
				t.Fatalf("strict parser: %v", s.err)
			}
			wantVer := byte(1)
			if v == "v2" {
				wantVer = 2
			}
			if s.hdr.Version != wantVer || s.hdr.Command != proxyproto.PROXY || s.hdr.TransportProtocol != proxyproto.TCPv4 ||
				s.hdr.SourceAddr.String() != client || s.hdr.DestinationAddr.String() != addr {
				t.Errorf("header: version %d, command %v, %v, %v -> %v; want %d, PROXY, TCP4, %s -> %s",
					s.hdr.Version, s.hdr.Command, s.hdr.TransportProtocol, s.hdr.SourceAddr, s.hdr.DestinationAddr, wantVer, client, addr)
			}
			if !bytes.Equal(s.rest, payload) {
				t.Errorf("bytes after the header: %d, equal %v; want the client's %d exactly", len(s.rest), false, len(payload))
			}
			sum := parseSummary(t, p.stop(t).stdout)
			if r := sum.record(t, client); r.BytesUp != int64(len(payload)) || r.BytesDown != 2 {
				t.Errorf("record: bytes_up %d, bytes_down %d; want %d, 2 (the header not counted)", r.BytesUp, r.BytesDown, len(payload))
			}
		})
	}
}
