package tlsup

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// waitBound bounds every wait in these tests.
const waitBound = 5 * time.Second

// dialTLS dials addr over TCP and runs Dial with o's config for host.
func dialTLS(t testing.TB, addr string, o Options, host string) (*Conn, error) {
	t.Helper()
	cfg, err := o.Config(host)
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	return dialWith(t, addr, cfg)
}

func dialWith(t testing.TB, addr string, cfg *tls.Config) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c, err := Dial(ctx, raw, cfg)
	if err == nil {
		t.Cleanup(func() { c.Abort() })
	}
	return c, err
}

func mustDial(t testing.TB, addr string, o Options, host string) *Conn {
	t.Helper()
	c, err := dialTLS(t, addr, o, host)
	if err != nil {
		t.Fatalf("Dial: %v (%s)", err, Describe(err))
	}
	return c
}

// handshakeOnly is Dial without the drain after the handshake, so records
// the server sends next stay queued on the socket for Probe.
func handshakeOnly(t testing.TB, addr string, cfg *tls.Config) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRawConn(raw)
	tc := tls.Client(rc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	c := &Conn{tc: tc, raw: rc}
	t.Cleanup(func() { c.Abort() })
	return c
}

// waitQueued waits until bytes are queued on c's socket.
func waitQueued(t testing.TB, c *Conn) {
	t.Helper()
	if err := c.raw.awaitQueued(context.Background(), time.Now().Add(waitBound)); err != nil {
		t.Fatalf("waiting for queued bytes: %v", err)
	}
	var ready bool
	c.raw.sc.Read(func(fd uintptr) bool { ready = readable(int(fd)); return true })
	if !ready {
		t.Fatalf("nothing queued on the socket after %v", waitBound)
	}
}

// plainServer is a TCP server on 127.0.0.1 (testsrv's tracked one) that
// hands each connection to handle, closing it after.
func plainServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	return testsrv.Serve(t, "tcp", "", func(c net.Conn, _ func()) { handle(c) }).Addr()
}

// localServer serves TLS for 127.0.0.1 with a certificate of ca.
func localServer(t testing.TB, ca *tlstest.CA, o tlstest.ServerOptions) *tlstest.Server {
	t.Helper()
	if o.Cert == nil {
		o.Cert = ca.Localhost(t)
	}
	return tlstest.Serve(t, o)
}
