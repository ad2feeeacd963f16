package tlsup

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestCloseWrite: our EOF reaches the server as close_notify after every
// byte before it, and our reading goes on until the server ends too.
func TestCloseWrite(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			// The server sees io.EOF only from a close_notify: a bare FIN
			// is an error to it, and it resets instead of answering.
			s := localServer(t, ca, tlstest.ServerOptions{
				MaxVersion: version,
				WrapConn:   func(c net.Conn) net.Conn { return eofHider{c} },
				Handle: func(tc *tls.Conn) {
					var got bytes.Buffer
					if _, err := io.Copy(&got, tc); err != nil {
						tlstest.Reset(tc)
						return
					}
					tc.Write(got.Bytes())
					tc.CloseWrite()
				},
			})
			c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
			data := make([]byte, 256<<10)
			rand.Read(data)
			n, err := c.Write(data)
			if err != nil || n != len(data) {
				t.Fatalf("Write: got %d, %v; want %d, nil", n, err, len(data))
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(waitBound))
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read after CloseWrite: got %d bytes (equal %v), %v; want the %d bytes sent, then EOF",
					len(got), bytes.Equal(got, data), err, len(data))
			}
		})
	}
}

// TestServerCloseNotify: the server's close_notify is io.EOF to us while our
// writing goes on.
func TestServerCloseNotify(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			late := make(chan string, 1)
			s := localServer(t, ca, tlstest.ServerOptions{
				MaxVersion: version,
				Handle: afterByte(func(tc *tls.Conn) {
					io.WriteString(tc, "bye")
					tc.CloseWrite()
					b, err := io.ReadAll(tc)
					if err != nil {
						late <- "error: " + err.Error()
						return
					}
					late <- string(b)
				}),
			})
			c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
			io.WriteString(c, "x")
			c.SetReadDeadline(time.Now().Add(waitBound))
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "bye" {
				t.Fatalf("ReadAll: got %q, %v; want %q, then EOF", got, err, "bye")
			}
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("Read after EOF: got %v; want io.EOF", err)
			}
			if n, err := io.WriteString(c, "late words"); err != nil || n != len("late words") {
				t.Fatalf("Write after the server's close_notify: got %d, %v; want %d, nil", n, err, len("late words"))
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-late:
				if s != "late words" {
					t.Fatalf("the server read %q; want %q", s, "late words")
				}
			case <-time.After(waitBound):
				t.Fatal("the server never saw our close_notify")
			}
		})
	}
}

// TestAbortAndClose: Abort is a reset with no close_notify; Close sends
// close_notify.
func TestAbortAndClose(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tt := range []struct {
		name   string
		end    func(*Conn) error
		wantIs error
	}{
		{"Abort", (*Conn).Abort, syscall.ECONNRESET},
		{"Close", (*Conn).Close, io.EOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan error, 1)
			s := localServer(t, ca, tlstest.ServerOptions{
				WrapConn: func(c net.Conn) net.Conn { return eofHider{c} },
				Handle: func(tc *tls.Conn) {
					_, err := io.Copy(io.Discard, tc)
					if err == nil {
						err = io.EOF
					}
					seen <- err
				},
			})
			c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
			io.WriteString(c, "some bytes")
			if err := tt.end(c); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			select {
			case err := <-seen:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("the server saw %v; want %v", err, tt.wantIs)
				}
			case <-time.After(waitBound):
				t.Fatal("the server saw nothing")
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("a second close: got %v; want net.ErrClosed", err)
			}
		})
	}
}
