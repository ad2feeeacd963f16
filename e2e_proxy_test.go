package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/warmport/warmport/internal/testsrv"
)

// askLine sends line on c and returns the backend's answer.
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
	h := testsrv.StartHAProxy(t)
	for _, v := range []string{"v1", "v2"} {
		for _, warm := range []string{"0", "2"} {
			t.Run(v+" warm "+warm, func(t *testing.T) {
				p := startWarmport(t, "forward", "--json", "--proxy-protocol", v, "--warm", warm, "127.0.0.1:0", h.Addr)
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
			p := startWarmport(t, "forward", "--proxy-protocol", v, "--warm", "0", "unix:"+path, h.Addr)
			p.waitReady(t)
			c, err := net.DialTimeout("unix", path, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got := askLine(t, c, "hi\n")
			f := strings.Fields(got)
			// Unknown origin: HAProxy uses its own connection's addresses,
			// warmport's upstream socket and its own front.
			if len(f) != 3 || f[1] != h.Addr || !strings.HasPrefix(f[0], "127.0.0.1:") || f[2] != "hi" {
				t.Errorf("backend answered %q; want \"127.0.0.1:PORT %s hi\"", got, h.Addr)
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
