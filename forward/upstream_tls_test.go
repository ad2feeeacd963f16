package forward

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/upstream/tlsup"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// tlsDialer dials addr and makes a verified TLS handshake: the Stream main
// plugs in for --tls.
func tlsDialer(t *testing.T, ca *tlstest.CA) func(ctx context.Context, addr string) (Stream, error) {
	cfg, err := tlsup.Options{CAFile: ca.File}.Config("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, addr string) (Stream, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		c, err := tlsup.Dial(ctx, raw, cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// A pooled TLS upstream whose server went away between the probe and the
// client's first bytes: when the server's socket was gone before they
// arrived (they were never acknowledged), they are replayed on a fresh
// handshake, once; when the server read them and then closed, they are
// not, and the client sees the server's end as a direct client would.
func TestTLSReplayWindow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		readFirst  bool // the stale server reads the request before it closes
		wantReplay bool
	}{
		{"closed before the bytes came", false, true},
		{"closed after reading them", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := tlstest.NewCA(t, "test CA")
			closeNow, closed, held := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var mu sync.Mutex
			conns, requests := 0, 0
			srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: func(tc2 *tls.Conn) {
				mu.Lock()
				conns++
				stale := conns == 1 // the pre-dialed one: the test lets the client come only once its handler runs
				mu.Unlock()
				if stale {
					close(held)
				}
				b := make([]byte, 1024)
				if stale {
					if tc.readFirst {
						n, _ := tc2.Read(b)
						mu.Lock()
						requests += min(n, 1)
						mu.Unlock()
						tc2.Close()
						return
					}
					<-closeNow
					tc2.Close() // close_notify, then the socket: bytes after it get a reset
					close(closed)
					return
				}
				n, _ := tc2.Read(b)
				mu.Lock()
				requests += min(n, 1)
				mu.Unlock()
				tc2.Write(b[:n])
				tlstest.Echo(tc2)
			}})
			if !tc.readFirst {
				var once sync.Once
				afterBorrow = func(src pool.Source) {
					if src == pool.Warm {
						once.Do(func() { close(closeNow); <-closed })
					}
				}
				t.Cleanup(func() { afterBorrow = nil })
			}
			f, addr := startForwarder(t, Config{Remote: srv.Addr, DialStream: tlsDialer(t, ca), Pool: pool.Options{Warm: 1}})
			eventually(t, "the warm handshake", func() bool { return f.PoolStats().Idle == 1 })
			select { // else the refill after the borrow may start its handler first and be taken for the stale one
			case <-held:
			case <-time.After(testTimeout):
				t.Fatal("the server never handled the pre-dialed connection")
			}
			c := dial(t, addr)
			msg := []byte("a request that must arrive once")
			c.Write(msg)
			c.CloseWrite()
			got, err := io.ReadAll(c)
			sum := shutdown(t, f, time.Second)
			mu.Lock()
			n := requests
			mu.Unlock()
			if n != 1 {
				t.Errorf("the server got the request %d times; want 1", n)
			}
			r := sum.Connections
			if len(r) != 1 {
				t.Fatalf("records %+v; want one", r)
			}
			if tc.wantReplay {
				if err != nil || string(got) != string(msg) || r[0].Source != "cold" {
					t.Fatalf("got %q, %v, source %s; want the echo after a replay on a fresh (cold) handshake", got, err, r[0].Source)
				}
				return
			}
			if len(got) != 0 || r[0].Source != "warm" || r[0].BytesDown != 0 {
				t.Fatalf("got %q, %v, record %+v; want no reply and no replay: the server had read the request", got, err, r[0])
			}
		})
	}
}

// The replay rule on a TLS stream asks its socket: bytes written after the
// server's socket was gone were never acknowledged (replay); bytes the
// server read were (no replay); a Stream without a socket replays only
// when nothing was written.
func TestReplayableStream(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tc := range []struct {
		name      string
		readFirst bool
		want      bool
	}{{"server gone first", false, true}, {"server read them", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			closeNow, done := make(chan struct{}), make(chan struct{})
			srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t), Handle: func(c *tls.Conn) {
				defer close(done)
				if tc.readFirst {
					c.Read(make([]byte, 64))
				} else {
					<-closeNow
				}
				c.Close()
			}})
			s, err := tlsDialer(t, ca)(context.Background(), srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Probe(); err != nil { // as the pool does on borrow
				t.Fatal(err)
			}
			if !tc.readFirst {
				close(closeNow)
				<-done // the server's socket is closed: what comes now gets a reset
			}
			msg := []byte("GET / HTTP/1.1\r\n\r\n")
			if _, err := s.Write(msg); err != nil {
				t.Fatal(err)
			}
			if tc.readFirst {
				<-done
			}
			if got := replayableStream(s, len(msg)); got != tc.want {
				t.Errorf("replayableStream: got %v; want %v", got, tc.want)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		var s upConn = tcpStream{}
		if !replayableStream(s, 0) || replayableStream(s, 1) {
			t.Errorf("a Stream the kernel cannot speak for: want a replay only when nothing was written")
		}
	})
}
