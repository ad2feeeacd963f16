package tlsup

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

const banner = "220 mail.example ESMTP ready\r\n"

func TestProbe(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	isEOF := func(err error) bool { return errors.Is(err, io.EOF) }
	for _, tt := range []struct {
		name    string
		srv     tlstest.ServerOptions
		prepare func(t testing.TB, c *Conn) // then Probe
		wantErr func(error) bool            // nil: alive
		want    string                      // the greeting Read returns first
	}{
		{name: "quiet, TLS 1.3", srv: tlstest.ServerOptions{}},
		{name: "quiet, TLS 1.2", srv: tlstest.ServerOptions{MaxVersion: tls.VersionTLS12}},
		{name: "banner is a greeting", srv: tlstest.ServerOptions{Handle: tlstest.Banner(banner)},
			prepare: waitGreeting, want: banner},
		{name: "banner is a greeting, TLS 1.2", srv: tlstest.ServerOptions{Handle: tlstest.Banner(banner), MaxVersion: tls.VersionTLS12},
			prepare: waitGreeting, want: banner},
		{name: "close_notify when idle is death", srv: tlstest.ServerOptions{Handle: tlstest.CloseNotifyWhenIdle(200 * time.Millisecond)},
			prepare: waitQueued, wantErr: isEOF},
		{name: "close_notify when idle is death, TLS 1.2",
			srv:     tlstest.ServerOptions{Handle: tlstest.CloseNotifyWhenIdle(200 * time.Millisecond), MaxVersion: tls.VersionTLS12},
			prepare: waitQueued, wantErr: isEOF},
		{name: "banner then close_notify is death", srv: tlstest.ServerOptions{Handle: afterByte(func(tc *tls.Conn) {
			io.WriteString(tc, banner)
			tc.CloseWrite()
			tlstest.Hold(tc)
		})}, prepare: func(t testing.TB, c *Conn) { sendByteThenWait(t, c); waitGreetingThenClose(t, c) }, wantErr: isEOF},
		{name: "FIN without close_notify is death", srv: tlstest.ServerOptions{Handle: afterByte(func(tc *tls.Conn) { tc.NetConn().Close() })},
			prepare: sendByteThenWait, wantErr: isEOF},
		{name: "reset is death", srv: tlstest.ServerOptions{Handle: afterByte(tlstest.Reset)},
			prepare: sendByteThenWait, wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) }},
		{name: "a past deadline is cleared", prepare: func(t testing.TB, c *Conn) { c.SetDeadline(time.Now().Add(-time.Second)) }},
		{name: "after CloseWrite", prepare: func(t testing.TB, c *Conn) { c.CloseWrite() },
			wantErr: func(err error) bool { return errors.Is(err, ErrWriteClosed) }},
		{name: "after Abort", prepare: func(t testing.TB, c *Conn) { c.Abort() },
			wantErr: func(err error) bool { return errors.Is(err, net.ErrClosed) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := localServer(t, ca, tt.srv)
			c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
			if tt.prepare != nil {
				tt.prepare(t, c)
			}
			err := c.Probe()
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("Probe: got %v; want a matching error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Probe: got %v; want nil", err)
			}
			if err := c.Probe(); err != nil || c.Buffered() != len(tt.want) {
				t.Fatalf("second Probe: got %v with %d bytes buffered; want nil with %d", err, c.Buffered(), len(tt.want))
			}
			c.SetReadDeadline(time.Now().Add(waitBound))
			if tt.want != "" {
				b := make([]byte, len(tt.want))
				if _, err := io.ReadFull(c, b); err != nil || string(b) != tt.want {
					t.Fatalf("after Probe, read got %q, %v; want the greeting %q", b, err, tt.want)
				}
			}
			// The greeting comes once; the echo proves the connection was
			// not poisoned by the probe's non-blocking reads.
			echoOnce(t, c, "after the probe")
		})
	}
}

// waitGreeting waits until the banner is buffered or queued.
func waitGreeting(t testing.TB, c *Conn) {
	t.Helper()
	if c.Buffered() == 0 {
		waitQueued(t, c)
	}
}

// afterByte runs h once the client has sent a byte, so that what h does
// comes after Dial.
func afterByte(h func(*tls.Conn)) func(*tls.Conn) {
	return func(tc *tls.Conn) {
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err == nil {
			h(tc)
		}
	}
}

func sendByteThenWait(t testing.TB, c *Conn) {
	t.Helper()
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, c)
}

// waitGreetingThenClose waits until the close_notify behind the banner has
// reached the socket (or Dial's drain).
func waitGreetingThenClose(t testing.TB, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for c.Probe() == nil && time.Now().Before(deadline) {
		waitQueued(t, c)
	}
}

// TestDialGreetingThenClose: a server that speaks and closes at once is
// heard: Dial succeeds, Read returns the words then EOF, Probe calls the
// connection dead.
func TestDialGreetingThenClose(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	s := localServer(t, ca, tlstest.ServerOptions{RequestCert: true, NoTickets: true, Handle: func(tc *tls.Conn) {
		io.WriteString(tc, "421 too many connections\r\n")
		tc.Close()
	}})
	// RequestCert makes Dial wait for the server's first records: with no
	// tickets, its words.
	c := mustDial(t, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
	if c.Buffered() == 0 {
		t.Fatal("Dial took in no greeting; want the server's words")
	}
	waitGreetingThenClose(t, c)
	if err := c.Probe(); !errors.Is(err, io.EOF) {
		t.Fatalf("Probe: got %v; want io.EOF", err)
	}
	c.SetReadDeadline(time.Now().Add(waitBound))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "421 too many connections\r\n" {
		t.Fatalf("ReadAll: got %q, %v; want the server's words, then EOF", got, err)
	}
}

// TestProbeTicket: a TLS 1.3 session ticket queued on an idle connection
// is neither a greeting nor a death, and Probe takes it in, so the next
// dial resumes.
func TestProbeTicket(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	// A server that asks for a client certificate sends its tickets after
	// the client's Finished, so they arrive after the handshake returns.
	s := localServer(t, ca, tlstest.ServerOptions{RequestCert: true})
	cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c := handshakeOnly(t, s.Addr, cfg)
	waitQueued(t, c)
	if err := c.Probe(); err != nil || c.Buffered() != 0 {
		t.Fatalf("Probe: got %v with %d bytes buffered; want nil with 0", err, c.Buffered())
	}
	if q, err := c.raw.queued(); q || err != nil {
		t.Fatalf("after Probe: queued got %v, %v; want false, nil", q, err)
	}
	echoOnce(t, c, "still fine")
	again, err := dialWith(t, s.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.ConnectionState().DidResume {
		t.Fatal("the next dial: got a full handshake; want it resumed with the ticket Probe took in")
	}
}

// TestProbePartialRecord: a record cut in two on the wire stays buffered in
// TLS: the first half makes no greeting and no error, the second completes it.
func TestProbePartialRecord(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	split := &splitConn{half: make(chan struct{}), rest: make(chan struct{})}
	s := localServer(t, ca, tlstest.ServerOptions{
		WrapConn: func(c net.Conn) net.Conn { split.Conn = c; return split },
		Handle: func(tc *tls.Conn) {
			split.armed.Store(true)
			io.WriteString(tc, banner)
			tlstest.Echo(tc)
		},
	})
	cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// Without Dial's drain, the first half cannot be read before Probe.
	c := handshakeOnly(t, s.Addr, cfg)
	select {
	case <-split.half:
	case <-time.After(waitBound):
		t.Fatal("the server never wrote the first half")
	}
	waitQueued(t, c)
	if err := c.Probe(); err != nil || c.Buffered() != 0 {
		t.Fatalf("Probe with half a record: got %v with %d bytes buffered; want nil with 0", err, c.Buffered())
	}
	close(split.rest)
	waitQueued(t, c)
	if err := c.Probe(); err != nil || c.Buffered() != len(banner) {
		t.Fatalf("Probe with the whole record: got %v with %d bytes buffered; want nil with %d", err, c.Buffered(), len(banner))
	}
	b := make([]byte, len(banner))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != banner {
		t.Fatalf("read got %q, %v; want %q", b, err, banner)
	}
	echoOnce(t, c, "whole again")
}
