package tlsup

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestUnixSocket: TLS over a Unix socket (REMOTE unix:PATH): the name comes
// from --tls-server-name, the probe peeks the same way, a banner is a
// greeting, and CloseWrite half-closes.
func TestUnixSocket(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	path := filepath.Join(t.TempDir(), "tls.sock")
	tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Unix: path, Handle: tlstest.Banner(banner)})
	cfg, err := Options{CAFile: ca.File, ServerName: "localhost"}.Config("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ctx, raw, cfg)
	if err != nil {
		t.Fatalf("Dial: %v (%s)", err, Describe(err))
	}
	defer c.Abort()
	waitGreeting(t, c)
	if err := c.Probe(); err != nil || c.Buffered() != len(banner) {
		t.Fatalf("Probe: got %v with %d bytes buffered; want nil with %d", err, c.Buffered(), len(banner))
	}
	io.WriteString(c, "tail")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitBound))
	got, err := io.ReadAll(c)
	if want := banner + "tail"; err != nil || string(got) != want {
		t.Fatalf("ReadAll: got %q, %v; want %q, then EOF", got, err, want)
	}
}
