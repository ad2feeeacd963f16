package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// End-to-end tests of --tls through the real binary against in-process TLS
// servers (upstream/tlsup/tlstest): what a user sees on stderr, what a
// client gets, and what the JSON summary records.

// startTLS runs `warmport forward --tls --json -q [extra] 0 REMOTE` and
// returns it with the address it listens on.
func startTLS(t *testing.T, remote string, extra ...string) (*proc, string) {
	t.Helper()
	args := append([]string{"forward", "--tls", "--json", "-q"}, extra...)
	p := startWarmport(t, append(args, "0", remote)...)
	return p, p.waitReady(t)
}

// tlsSummary is the JSON summary with the contract's "tls" key.
func tlsSummary(t *testing.T, stdout string) (jsonSummary, bool) {
	t.Helper()
	s := parseSummary(t, stdout)
	var k struct {
		TLS *bool `json:"tls"`
	}
	ls := lines(stdout)
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &k); err != nil || k.TLS == nil {
		t.Fatalf(`the JSON summary has no "tls" key (%v): %s`, err, ls[len(ls)-1])
	}
	return s, *k.TLS
}

// warnings returns stderr's warning lines.
func warnings(stderr string) []string {
	var out []string
	for _, l := range lines(stderr) {
		if strings.HasPrefix(l, "warmport: warning: ") {
			out = append(out, l)
		}
	}
	return out
}

// TestTLSFlags: bad TLS flag values and PEM files are usage errors (exit 2),
// one line naming what to fix, before anything listens.
func TestTLSFlags(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	other := ca.Issue(t, tlstest.LeafOptions{CommonName: "other", Client: true})
	dir := t.TempDir()
	notPEM := tlstest.WriteFile(t, dir, "not.pem", []byte("hello\n"))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		args []string
		has  string
	}{
		{"ca without tls", []string{"--tls-ca", ca.File}, "--tls-ca needs --tls"},
		{"insecure without tls", []string{"--tls-insecure"}, "--tls-insecure needs --tls"},
		{"name without tls", []string{"--tls-server-name", "db"}, "--tls-server-name needs --tls"},
		{"missing ca", []string{"--tls", "--tls-ca", missing}, "--tls-ca: open " + missing},
		{"ca not pem", []string{"--tls", "--tls-ca", notPEM}, "holds no PEM certificate"},
		{"key of another cert", []string{"--tls", "--tls-cert", client.CertFile, "--tls-key", other.KeyFile}, "is not the key of --tls-cert"},
		{"key without cert", []string{"--tls", "--tls-key", client.KeyFile}, "needs --tls-cert"},
		{"cert without key", []string{"--tls", "--tls-cert", client.CertFile}, "holds no private key"},
		{"insecure and ca", []string{"--tls", "--tls-insecure", "--tls-ca", ca.File}, "pass one of them"},
		{"name with port", []string{"--tls", "--tls-server-name", "db:6379"}, "without a port"},
		{"reuse", []string{"--tls", "--reuse", "redis"}, "drop --reuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWarmport(t, append(append([]string{"forward"}, tc.args...), "0", "127.0.0.1:1")...)
			ls := lines(r.stderr)
			if r.status != 2 || len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") || !strings.Contains(ls[0], tc.has) {
				t.Fatalf("status %d, stderr %q; want status 2 and one line containing %q", r.status, r.stderr, tc.has)
			}
		})
	}
	t.Run("unix remote needs a name", func(t *testing.T) {
		r := runWarmport(t, "forward", "--tls", "0", "unix:"+filepath.Join(dir, "s.sock"))
		if r.status != 2 || !strings.Contains(r.stderr, "pass --tls-server-name NAME") {
			t.Fatalf("status %d, stderr %q; want 2 naming --tls-server-name", r.status, r.stderr)
		}
	})
}

// TestTLSVersions: a warm pool of finished handshakes to a TLS 1.3 server
// (with session tickets, which are not a greeting) and a TLS 1.2-only one:
// every client's bytes come back whole, pooled clients hit, refills resume,
// byte counts are the application's, and "tls" is true in the JSON.
func TestTLSVersions(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tc := range []struct {
		name string
		max  uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), MaxVersion: tc.max})
			p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "2")
			p.waitPoolIdle(t, 2)
			msgs := []string{"one", strings.Repeat("x", 3<<20), "three"}
			var clients []string
			for _, m := range msgs {
				clients = append(clients, echoOnce(t, addr, m))
			}
			s, isTLS := tlsSummary(t, p.stop(t).stdout)
			if !isTLS {
				t.Errorf(`"tls": got false; want true`)
			}
			for i, c := range clients {
				r := s.record(t, c)
				if r.BytesUp != int64(len(msgs[i])) || r.BytesDown != int64(len(msgs[i])) || r.ClosedBy != "client" {
					t.Errorf("client %d: up %d down %d closed by %q; want %d both ways, closed by client", i, r.BytesUp, r.BytesDown, r.ClosedBy, len(msgs[i]))
				}
				if r.Source != "warm" {
					t.Errorf("client %d: source %q; want warm", i, r.Source)
				}
			}
			if s.Pool.Hits < uint64(len(msgs)) || s.Pool.Stale != 0 {
				t.Errorf("pool: %d hits, %d stale; want %d hits, 0 stale (tickets are no greeting, no death)", s.Pool.Hits, s.Pool.Stale, len(msgs))
			}
			if srv.Resumed.Load() == 0 {
				t.Errorf("resumed handshakes: got 0 of %d; want refills to resume", srv.Accepted.Load())
			}
		})
	}
	t.Run("plain JSON", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := startWarmport(t, "forward", "--json", "--warm", "0", "0", ln.Addr().String())
		p.waitReady(t)
		if _, isTLS := tlsSummary(t, p.stop(t).stdout); isTLS {
			t.Errorf(`"tls" without --tls: got true; want false`)
		}
	})
}

// TestTLSBanner: an implicit-TLS server that speaks first (SMTPS, IMAPS):
// a pooled connection's banner reaches the client first, exactly once.
func TestTLSBanner(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	const banner = "220 mail.example ESMTP ready\r\n"
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: tlstest.Banner(banner)})
	p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "1")
	p.waitPoolIdle(t, 1)
	for i := range 2 {
		c, err := dialClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "EHLO me\r\n")
		c.CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if want := banner + "EHLO me\r\n"; err != nil || string(got) != want {
			t.Fatalf("client %d: got %q, %v; want %q (the banner once, then the echo)", i, got, err, want)
		}
	}
	s, _ := tlsSummary(t, p.stop(t).stdout)
	if s.Pool.Hits == 0 {
		t.Errorf("pool hits: got 0; want the banner held by a pooled connection")
	}
}

// TestTLSCloseNotifyWhenIdle: a server that ends idle connections with
// close_notify after 200 ms (keeping the socket open): the probe discards
// those (stale), and the client gets a live one; none sees the dead one's end.
func TestTLSCloseNotifyWhenIdle(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	notified := make(chan struct{}, 64)
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: func(tc *tls.Conn) {
		tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		n, err := tc.Read(b[:])
		tc.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tc.CloseWrite()
			notified <- struct{}{}
			io.Copy(io.Discard, tc)
			return
		}
		tc.Write(b[:n])
		tlstest.Echo(tc)
	}})
	p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "2")
	p.waitPoolIdle(t, 2)
	for range 2 { // both pooled handshakes got close_notify
		select {
		case <-notified:
		case <-time.After(readyTimeout):
			t.Fatal("the server sent no close_notify to the idle connections")
		}
	}
	echoOnce(t, addr, "after idle")
	s, _ := tlsSummary(t, p.stop(t).stdout)
	if s.Pool.Stale < 2 {
		t.Errorf("stale: got %d; want the 2 connections the server closed discarded by the probe", s.Pool.Stale)
	}
	if s.Totals.Failed != 0 || s.Connections[0].ClosedBy != "client" {
		t.Errorf("failed %d, closed by %q; want 0 and client", s.Totals.Failed, s.Connections[0].ClosedBy)
	}
}

// TestTLSServerResets: a server that resets right after the handshake: the
// client sees a reset, never a clean end, and the record says error.
func TestTLSServerResets(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: tlstest.Reset})
	p, addr := startTLS(t, srv.Addr, "--tls-ca", ca.File, "--warm", "0")
	c, err := dialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "hello")
	_, err = io.ReadAll(c)
	c.Close()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: got %v; want a reset (the server's abort is no clean EOF)", err)
	}
	s, _ := tlsSummary(t, p.stop(t).stdout)
	if len(s.Connections) != 1 || s.Connections[0].ClosedBy != "error" {
		t.Fatalf("records: %+v; want one closed by error", s.Connections)
	}
}

// TestTLSDialFailures: a handshake that cannot succeed (wrong CA, wrong
// name, a client certificate demanded) prints one warning line naming the
// fix, however many dials fail; each client is closed and recorded with
// that text; the fix makes it work.
func TestTLSDialFailures(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	otherCA := tlstest.NewCA(t, "other CA")
	client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	named := ca.Issue(t, tlstest.LeafOptions{DNSNames: []string{"db.internal"}})
	for _, tc := range []struct {
		name      string
		opts      tlstest.ServerOptions
		bad, good []string
		says      string
	}{
		{"wrong CA", tlstest.ServerOptions{Cert: ca.Localhost(t)},
			[]string{"--tls-ca", otherCA.File}, []string{"--tls-ca", ca.File}, "pass --tls-ca FILE"},
		{"wrong name", tlstest.ServerOptions{Cert: named},
			[]string{"--tls-ca", ca.File}, []string{"--tls-ca", ca.File, "--tls-server-name", "db.internal"}, "pass --tls-server-name NAME"},
		{"client certificate demanded", tlstest.ServerOptions{Cert: ca.Localhost(t), ClientCA: ca},
			[]string{"--tls-ca", ca.File}, []string{"--tls-ca", ca.File, "--tls-cert", client.CertFile, "--tls-key", client.KeyFile}, "pass --tls-cert FILE and --tls-key FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlstest.Serve(t, tc.opts)
			p, addr := startTLS(t, srv.Addr, append(tc.bad, "--warm", "2")...)
			const clients = 3
			for i := range clients {
				c, err := dialClient(addr)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c)
				c.Close()
				if len(got) != 0 || err == nil {
					t.Fatalf("client %d: got %q, %v; want no byte and a reset", i, got, err)
				}
			}
			r := p.stop(t)
			ws := warnings(r.stderr)
			if len(ws) != 1 || !strings.Contains(ws[0], tc.says) {
				t.Fatalf("warnings: %q; want one line containing %q\nstderr:\n%s", ws, tc.says, r.stderr)
			}
			s, _ := tlsSummary(t, r.stdout)
			if len(s.Connections) != clients || s.Totals.Failed != clients {
				t.Fatalf("got %d records, %d failed; want %d of each", len(s.Connections), s.Totals.Failed, clients)
			}
			for _, rec := range s.Connections {
				if rec.ClosedBy != "error" || !strings.Contains(rec.Error, tc.says) {
					t.Errorf("record %d: closed by %q, error %q; want error containing %q", rec.ID, rec.ClosedBy, rec.Error, tc.says)
				}
			}

			p, addr = startTLS(t, srv.Addr, append(tc.good, "--warm", "1")...)
			echoOnce(t, addr, "fixed")
			if r := p.stop(t); len(warnings(r.stderr)) != 0 {
				t.Errorf("with the fix: warnings %q; want none", warnings(r.stderr))
			}
		})
	}
}

// TestTLSInsecure: --tls-insecure relays to a server no CA here vouches
// for, after exactly one warning line that says the traffic is exposed.
func TestTLSInsecure(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t)})
	p, addr := startTLS(t, srv.Addr, "--tls-insecure", "--warm", "1")
	echoOnce(t, addr, "unverified")
	r := p.stop(t)
	ws := warnings(r.stderr)
	if len(ws) != 1 || !strings.Contains(ws[0], "--tls-insecure") || !strings.Contains(ws[0], "not verified") {
		t.Fatalf("warnings: %q; want one line about --tls-insecure", ws)
	}
	if !strings.Contains(lines(r.stderr)[0], "forwarding") {
		t.Errorf("first stderr line %q; want the ready line first", lines(r.stderr)[0])
	}
}

// TestTLSUnixRemote: TLS over a unix: REMOTE (a TLS server on a Unix
// socket), verified for --tls-server-name, with half-close.
func TestTLSUnixRemote(t *testing.T) {
	if !binaryHasUnix() {
		t.Skip("this build relays no Unix sockets")
	}
	ca := tlstest.NewCA(t, "test CA")
	dir, err := os.MkdirTemp("", "wp-tls") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "tls.sock")
	tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Unix: path})
	p, addr := startTLS(t, "unix:"+path, "--tls-ca", ca.File, "--tls-server-name", "localhost", "--warm", "1")
	p.waitPoolIdle(t, 1)
	msg := strings.Repeat("u", 1<<20)
	client := echoOnce(t, addr, msg)
	s, _ := tlsSummary(t, p.stop(t).stdout)
	if r := s.record(t, client); r.BytesUp != int64(len(msg)) || r.BytesDown != int64(len(msg)) || r.Source != "warm" {
		t.Fatalf("record: %+v; want %d bytes both ways from a warm upstream", r, len(msg))
	}
}

// TestTLSProfile: the TLS flags are per-forward keys of a profile: `up`
// runs a TLS forward beside a plain one, each JSON summary says which is
// which, and a TLS key without tls = true is an error at its line.
func TestTLSProfile(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t)})
	plain := startUpstream(t, echo).addr()
	path := writeProfile(t, fmt.Sprintf("warm = 1\n[forward.cache]\nlocal = 0\nremote = %q\ntls = true\ntls-ca = %q\n[forward.web]\nlocal = 0\nremote = %q\n",
		srv.Addr, ca.File, plain))
	p := startWarmport(t, "up", "--json", "-q", "-f", path)
	addrs := p.waitReadyN(t, 2)
	echoOnce(t, addrs[0], "through TLS")
	echoOnce(t, addrs[1], "plain")
	r := p.stop(t)
	var doc struct {
		Forwards []struct {
			Name string `json:"name"`
			TLS  bool   `json:"tls"`
		} `json:"forwards"`
	}
	ls := lines(r.stdout)
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &doc); err != nil || len(doc.Forwards) != 2 {
		t.Fatalf("up --json: %v, %s", err, r.stdout)
	}
	if f := doc.Forwards; f[0].Name != "cache" || !f[0].TLS || f[1].Name != "web" || f[1].TLS {
		t.Errorf("forwards %+v; want cache with tls true, web with tls false", f)
	}

	bad := writeProfile(t, "[forward.cache]\nlocal = 0\nremote = \"127.0.0.1:1\"\ntls-ca = \"ca.pem\"\n")
	r = runWarmport(t, "up", "--check", "-f", bad)
	if want := bad + ":4: --tls-ca needs --tls"; r.status != 2 || !strings.HasPrefix(strings.TrimPrefix(r.stderr, "warmport: "), want) {
		t.Errorf("status %d, stderr %q; want 2 and %q", r.status, r.stderr, want)
	}
}
