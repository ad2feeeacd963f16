package tlsup

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestRedisTLS drives a real redis-server (Debian's, built with TLS) through
// Conn with RESP: integrity of a large value, the probe on a connection
// whose OpenSSL session tickets arrived after the handshake, resumption, and
// death by the server's idle timeout.
func TestRedisTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tt := range []struct {
		name    string
		args    []string
		version uint16
	}{
		{"TLS 1.3", nil, tls.VersionTLS13},
		{"TLS 1.2", []string{"--tls-protocols", "TLSv1.2"}, tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := redisTLS(t, ca, tt.args...)
			cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			// No drain after the handshake: OpenSSL's TLS 1.3 tickets
			// come after it and must be queued when Probe runs.
			c := handshakeOnly(t, addr, cfg)
			if tt.version == tls.VersionTLS13 {
				waitQueued(t, c)
			}
			if err := c.Probe(); err != nil || c.Buffered() != 0 {
				t.Fatalf("Probe: got %v with %d bytes buffered; want nil with 0", err, c.Buffered())
			}
			if q, err := c.raw.queued(); q || err != nil {
				t.Fatalf("after Probe: queued got %v, %v; want false, nil (the tickets taken in)", q, err)
			}
			again, err := dialWith(t, addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !again.ConnectionState().DidResume {
				t.Fatal("the second dial: got a full handshake; want it resumed")
			}
			if got := c.ConnectionState().Version; got != tt.version {
				t.Fatalf("version: got %x; want %x", got, tt.version)
			}
			r := bufio.NewReader(c)
			if got := command(t, c, r, "PING"); got != "+PONG" {
				t.Fatalf("PING: got %q; want +PONG", got)
			}
			value := make([]byte, 300<<10)
			rand.Read(value)
			big := hex.EncodeToString(value)
			if got := command(t, c, r, "SET", "k", big); got != "+OK" {
				t.Fatalf("SET: got %q; want +OK", got)
			}
			if got := command(t, c, r, "GET", "k"); got != big {
				t.Fatalf("GET: got %d bytes, equal %v; want the %d bytes set", len(got), got == big, len(big))
			}

			if got := command(t, again, bufio.NewReader(again), "GET", "k"); got != big {
				t.Fatalf("GET on the resumed connection: got %d bytes; want the %d bytes set", len(got), len(big))
			}
		})
	}
}

// TestRedisIdleTimeout: redis closes an idle client after its timeout; the
// probe calls that connection dead.
func TestRedisIdleTimeout(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	addr := redisTLS(t, ca, "--timeout", "1")
	c := mustDial(t, addr, Options{CAFile: ca.File}, "127.0.0.1")
	if err := c.Probe(); err != nil {
		t.Fatalf("Probe of a fresh connection: got %v; want nil", err)
	}
	waitGreetingThenClose(t, c)
	err := c.Probe()
	if err == nil {
		t.Fatal("Probe after redis's idle timeout: got nil; want the connection dead")
	}
	t.Logf("Probe after redis's idle timeout: %v", err)
}

// TestRedisMTLS: redis with tls-auth-clients yes refuses a client without a
// certificate, in words naming the flags, and serves one with.
func TestRedisMTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"TLS 1.3", nil},
		{"TLS 1.2", []string{"--tls-protocols", "TLSv1.2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := redisTLS(t, ca, append([]string{"--tls-auth-clients", "yes"}, tt.args...)...)
			_, err := dialTLS(t, addr, Options{CAFile: ca.File}, "127.0.0.1")
			var he *HandshakeError
			if !errors.As(err, &he) || !strings.Contains(Describe(err), "pass --tls-cert FILE and --tls-key FILE") {
				t.Fatalf("Dial without a client certificate: got %v (%s); want a HandshakeError naming --tls-cert", err, Describe(err))
			}
			c := mustDial(t, addr, Options{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, "127.0.0.1")
			if got := command(t, c, bufio.NewReader(c), "PING"); got != "+PONG" {
				t.Fatalf("PING with a client certificate: got %q; want +PONG", got)
			}
		})
	}
}

// TestRedisCLI: redis-cli, the real client, through a plaintext relay over
// Conn, each command on a fresh connection.
func TestRedisCLI(t *testing.T) {
	cli := testsrv.Need(t, "redis-cli", "redis-tools")
	ca := tlstest.NewCA(t, "test CA")
	addr := redisTLS(t, ca)
	cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	local := relay(t, func() (*Conn, error) { return dialWith(t, addr, cfg) })
	host, port, _ := strings.Cut(local, ":")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return string(bytes.TrimSpace(out))
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "greeting", "hello over TLS"}, "OK"},
		{[]string{"GET", "greeting"}, "hello over TLS"},
		{[]string{"INCR", "n"}, "1"},
		{[]string{"INCR", "n"}, "2"},
	} {
		if got := run(tt.args...); got != tt.want {
			t.Errorf("redis-cli %v: got %q; want %q", tt.args, got, tt.want)
		}
	}
}
