package tlsup

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestStunnelHalfClose: through stunnel4 in server mode (OpenSSL), our
// CloseWrite reaches the plaintext backend as EOF after every byte, and the
// backend's answer, written after that EOF, comes back before the end.
func TestStunnelHalfClose(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	backend := plainServer(t, func(c net.Conn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes", n)
	})
	for _, tt := range []struct {
		name    string
		options []string
	}{
		{"TLS 1.3", nil},
		{"TLS 1.2", []string{"sslVersionMax = TLSv1.2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := stunnelTLS(t, ca, backend, tt.options...)
			c := mustDial(t, addr, Options{CAFile: ca.File}, "127.0.0.1")
			data := make([]byte, 1<<20)
			rand.Read(data)
			if n, err := c.Write(data); err != nil || n != len(data) {
				t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(data))
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(waitBound))
			got, err := io.ReadAll(c)
			if want := fmt.Sprintf("got %d bytes", len(data)); err != nil || string(got) != want {
				t.Fatalf("ReadAll: got %q, %v; want %q, then EOF", got, err, want)
			}
		})
	}
}

// TestStunnelBanner: a backend that speaks first (as SMTP does) behind
// stunnel is an implicit-TLS server: its banner is a greeting Probe keeps
// for the client, handed out once.
func TestStunnelBanner(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	backend := plainServer(t, func(c net.Conn) {
		io.WriteString(c, banner)
		io.Copy(c, c)
	})
	addr := stunnelTLS(t, ca, backend)
	c := mustDial(t, addr, Options{CAFile: ca.File}, "127.0.0.1")
	deadline := time.Now().Add(waitBound)
	for c.Buffered() < len(banner) && time.Now().Before(deadline) {
		waitQueued(t, c)
		if err := c.Probe(); err != nil {
			t.Fatalf("Probe: got %v; want nil", err)
		}
	}
	if got := c.Buffered(); got != len(banner) {
		t.Fatalf("Buffered: got %d; want the banner's %d", got, len(banner))
	}
	c.SetReadDeadline(time.Now().Add(waitBound))
	b := make([]byte, len(banner))
	if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, []byte(banner)) {
		t.Fatalf("read: got %q, %v; want %q", b, err, banner)
	}
	echoOnce(t, c, "EHLO client\r\n")
}
