package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// tcpStream is a Stream over a TCP connection: the forwarder knows it only
// through the Stream interface, as it knows a TLS connection or an SSH
// channel (upstream.go).
type tcpStream struct {
	*net.TCPConn
	probes *atomic.Int64
}

func (s tcpStream) Abort() error { s.SetLinger(0); return s.Close() }
func (s tcpStream) Probe() error { s.probes.Add(1); return nil }

// streamDialer dials the remote it is given as a Stream and counts the
// probes of its streams.
func streamDialer(probes *atomic.Int64) func(ctx context.Context, remote string) (Stream, error) {
	return func(ctx context.Context, remote string) (Stream, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", remote)
		if err != nil {
			return nil, err
		}
		return tcpStream{c.(*net.TCPConn), probes}, nil
	}
}

// A Stream upstream (Config.DialStream) relays like a socket: each client's
// bytes, its EOF, then the whole reply, with exact totals; warm streams are
// probed through Probe on borrow and their records name the stream's peer.
func TestStreamUpstreamRoundTrip(t *testing.T) {
	for _, warm := range []int{0, 2} {
		t.Run(fmt.Sprintf("warm=%d", warm), func(t *testing.T) {
			up := startUpstream(t, replyAfterEOF)
			var probes atomic.Int64
			f, addr := startForwarder(t, Config{Remote: up.addr(), DialStream: streamDialer(&probes),
				Pool: pool.Options{Warm: warm}})
			eventually(t, "the warm streams", func() bool { return f.PoolStats().Idle >= warm })
			const clients = 5
			wantUp := roundTrips(t, addr, clients)
			sum := shutdown(t, f, time.Second)
			if got := sum.Totals; got.BytesUp != wantUp || got.Connections != clients {
				t.Errorf("totals = %+v; want %d connections, up %d", got, clients, wantUp)
			}
			for _, r := range sum.Connections {
				if r.ClosedBy != session.ClosedByClient || r.Upstream != up.addr() {
					t.Errorf("record %+v; want closed by client, upstream %s", r, up.addr())
				}
			}
			if hits := sum.Pool.Hits; (hits > 0) != (probes.Load() > 0) || (warm > 0 && hits == 0) {
				t.Errorf("pool hits %d, probes %d; want every warm borrow probed through Probe", hits, probes.Load())
			}
		})
	}
}

// An abort stays an abort on a Stream too: an upstream's reset reaches the
// client as a reset, and the idle timeout resets the upstream (Abort).
func TestStreamUpstreamAbort(t *testing.T) {
	t.Run("upstream reset", func(t *testing.T) {
		up := startUpstream(t, func(c *net.TCPConn) {
			if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
				return
			}
			c.Write([]byte("partial"))
			c.SetLinger(0)
		})
		var probes atomic.Int64
		f, addr := startForwarder(t, Config{Remote: up.addr(), DialStream: streamDialer(&probes)})
		c := dial(t, addr)
		c.Write([]byte("go"))
		if n, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read %d bytes, then %v; want a reset (ECONNRESET)", n, err)
		}
		if r := shutdown(t, f, time.Second).Connections; len(r) != 1 || r[0].ClosedBy != session.ClosedByError {
			t.Errorf("records %+v; want one, closed_by error", r)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		got := make(chan error, 1)
		up := startUpstream(t, func(c *net.TCPConn) {
			_, err := io.Copy(io.Discard, c)
			got <- err
		})
		var probes atomic.Int64
		f, addr := startForwarder(t, Config{Remote: up.addr(), DialStream: streamDialer(&probes),
			IdleTimeout: 50 * time.Millisecond})
		c := dial(t, addr)
		c.Write([]byte("then nothing"))
		select {
		case err := <-got:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("upstream read ended with %v; want a reset (ECONNRESET)", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("the idle timeout never ended the upstream's stream")
		}
		if r := shutdown(t, f, time.Second).Connections; len(r) != 1 || r[0].ClosedBy != session.ClosedByTimeout {
			t.Errorf("records %+v; want one, closed_by timeout", r)
		}
	})
}
