package tlsup

import (
	"crypto/tls"
	"testing"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestWrittenSinceProbe: the count is of the socket's bytes since the last
// Probe (records, framing included: more than the application wrote), and
// Probe starts it again; the handshake's bytes are never in it.
func TestWrittenSinceProbe(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			s := localServer(t, ca, tlstest.ServerOptions{MaxVersion: version, Handle: tlstest.Hold})
			c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
			if err := c.Probe(); err != nil {
				t.Fatal(err)
			}
			if got := c.WrittenSinceProbe(); got != 0 {
				t.Fatalf("after Probe: got %d; want 0", got)
			}
			msg := []byte("PING\r\n")
			for range 3 {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
			}
			// One record per Write: its header, the bytes, the AEAD's
			// framing (5 + 6 + 16 and, in TLS 1.3, the content type).
			got, app := c.WrittenSinceProbe(), 3*len(msg)
			if got <= app || got > 3*(len(msg)+40) {
				t.Fatalf("after 3 writes of %d bytes: got %d; want more than %d, at most %d", len(msg), got, app, 3*(len(msg)+40))
			}
			if err := c.Probe(); err != nil || c.WrittenSinceProbe() != 0 {
				t.Fatalf("after another Probe: got %d, %v; want 0, nil", c.WrittenSinceProbe(), err)
			}
		})
	}
}
