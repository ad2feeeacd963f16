package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
	"github.com/warmport/warmport/recycle/realserver"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// Real TLS servers from Debian through the real binary: redis-server's TLS
// port driven by redis-cli, and stunnel4 in server mode.

func tlsFiles(t *testing.T, ca *tlstest.CA) realserver.TLSFiles {
	t.Helper()
	leaf := ca.Localhost(t)
	return realserver.TLSFiles{Cert: leaf.CertFile, Key: leaf.KeyFile, CA: ca.File}
}

// TestTLSRedisCLI: redis-cli, which speaks no TLS here, through
// `warmport forward --tls --tls-ca` to redis-server listening only on a TLS
// port (TLS 1.3 and 1.2-only): every command on a new connection served by a
// pooled handshake, a value larger than a TLS record whole, and byte counts
// that are RESP's own bytes.
func TestTLSRedisCLI(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tc := range []struct {
		name string
		args []string
	}{{"TLS 1.3", nil}, {"TLS 1.2", []string{"--tls-protocols", "TLSv1.2"}}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := realserver.RedisTLS(t, tlsFiles(t, ca), tc.args...)
			p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "2")
			p.waitPoolIdle(t, 2)
			host, port, _ := net.SplitHostPort(addr)
			cli := func(args ...string) string {
				t.Helper()
				return strings.TrimSpace(runTool(t, "redis-tools", "redis-cli", append([]string{"-h", host, "-p", port}, args...)...))
			}
			value := make([]byte, 40<<10)
			rand.Read(value)
			big := hex.EncodeToString(value) // 80 KiB: five TLS records, under the kernel's 128 KiB bound on one argument
			for _, step := range []struct {
				args []string
				want string
			}{
				{[]string{"PING"}, "PONG"},
				{[]string{"SET", "big", big}, "OK"},
				{[]string{"GET", "big"}, big},
				{[]string{"INCR", "n"}, "1"},
				{[]string{"INCR", "n"}, "2"},
			} {
				if got := cli(step.args...); got != step.want {
					t.Fatalf("redis-cli %s: got %d bytes %.40q; want %.40q", step.args[0], len(got), got, step.want)
				}
			}
			s, isTLS := tlsSummary(t, p.stop(t).stdout)
			if !isTLS || len(s.Connections) != 5 || s.Totals.Failed != 0 {
				t.Fatalf("tls %v, %d records, %d failed; want true, 5, 0", isTLS, len(s.Connections), s.Totals.Failed)
			}
			if s.Pool.Hits == 0 {
				t.Errorf("pool hits: got 0; want redis-cli served by pooled handshakes")
			}
			ping := s.Connections[0]
			if want := int64(len("*1\r\n$4\r\nPING\r\n")); ping.BytesUp != want || ping.BytesDown != int64(len("+PONG\r\n")) {
				t.Errorf("PING's record: up %d down %d; want %d and %d (RESP's bytes, not TLS records)", ping.BytesUp, ping.BytesDown, want, len("+PONG\r\n"))
			}
			if get := s.Connections[2]; get.BytesDown < int64(len(big)) || get.BytesDown > int64(len(big))+16 {
				t.Errorf("GET's record: down %d; want the %d-byte value and its RESP header", get.BytesDown, len(big))
			}
		})
	}
	t.Run("mTLS", func(t *testing.T) {
		client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
		srv := realserver.RedisTLS(t, tlsFiles(t, ca), "--tls-auth-clients", "yes")
		p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--tls-cert", client.CertFile, "--tls-key", client.KeyFile)
		host, port, _ := net.SplitHostPort(addr)
		if got := strings.TrimSpace(runTool(t, "redis-tools", "redis-cli", "-h", host, "-p", port, "PING")); got != "PONG" {
			t.Fatalf("redis-cli PING with a client certificate: got %q; want PONG", got)
		}
		if ws := warnings(p.stop(t).stderr); len(ws) != 0 {
			t.Errorf("warnings: %q; want none", ws)
		}
	})
}

// TestTLSStunnel: stunnel4 (OpenSSL) as the TLS server in front of a
// plaintext backend: the client's EOF reaches the backend as EOF after
// every byte (close_notify, then FIN), the backend's answer written after
// it comes back, then the client's EOF.
func TestTLSStunnel(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	backend := testsrv.Serve(t, "tcp", "", func(c net.Conn, _ func()) {
		if n, err := io.Copy(io.Discard, c); err == nil {
			fmt.Fprintf(c, "got %d bytes", n)
		}
	})
	for _, tc := range []struct {
		name    string
		options []string
	}{{"TLS 1.3", nil}, {"TLS 1.2", []string{"sslVersionMax = TLSv1.2"}}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := realserver.Stunnel(t, tlsFiles(t, ca), backend.Addr(), tc.options...)
			p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "1")
			p.waitPoolIdle(t, 1)
			c, err := dialClient(addr)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 2<<20)
			rand.Read(data)
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			c.CloseWrite()
			got, err := io.ReadAll(c)
			c.Close()
			if want := fmt.Sprintf("got %d bytes", len(data)); err != nil || string(got) != want {
				t.Fatalf("got %q, %v; want %q, then EOF", got, err, want)
			}
			s, _ := tlsSummary(t, p.stop(t).stdout)
			if r := s.Connections[0]; r.BytesUp != int64(len(data)) || r.ClosedBy != "client" {
				t.Fatalf("record: up %d closed by %q; want %d, client", r.BytesUp, r.ClosedBy, len(data))
			}
		})
	}
}
