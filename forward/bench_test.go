package forward

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
)

// sink reads and discards everything through a user-space buffer, so the
// benchmark's upstream does not splice and measures only the forwarder.
func sink(c *net.TCPConn) { io.Copy(io.Discard, struct{ io.Reader }{c}) }

// BenchmarkRelayBulk: one stream through the forwarder, client -> sink.
// Compare with BenchmarkDirectBulk (same, without the forwarder).
func BenchmarkRelayBulk(b *testing.B) {
	up := startUpstream(b, sink).addr()
	_, addr := startForwarder(b, Config{Remote: up, Pool: pool.Options{Warm: 0}})
	benchBulk(b, addr)
}

func BenchmarkDirectBulk(b *testing.B) {
	benchBulk(b, startUpstream(b, sink).addr())
}

func benchBulk(b *testing.B, addr string) {
	buf := make([]byte, 256<<10)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayShortConn: connect, 64-byte request, 64-byte reply, close.
func BenchmarkRelayShortConn(b *testing.B) {
	for _, tc := range []struct {
		name string
		warm int
	}{{"cold", 0}, {"warm", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			up := startUpstream(b, echo).addr()
			_, addr := startForwarder(b, Config{Remote: up, Pool: pool.Options{Warm: tc.warm}})
			benchShort(b, addr)
		})
	}
}

func BenchmarkDirectShortConn(b *testing.B) {
	benchShort(b, startUpstream(b, echo).addr())
}

func benchShort(b *testing.B, addr string) {
	msg := make([]byte, 64)
	reply := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(msg)
		if _, err := io.ReadFull(c, reply); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkRelayBulkReuse: BenchmarkRelayBulk through a --reuse http pair,
// whose bytes go through user space for the tracker instead of splice (the
// bytes are not HTTP: the tracker gives up at once, so this is the copy's
// cost alone).
func BenchmarkRelayBulkReuse(b *testing.B) {
	up := startUpstream(b, sink).addr()
	_, addr := startForwarder(b, Config{Remote: up, Reuse: recycle.HTTP, Pool: pool.Options{Warm: 0}})
	benchBulk(b, addr)
}

// BenchmarkRelayHTTP: GETs of a 16 KiB body from a real HTTP/1.1 server
// (net/http), on one keep-alive connection or a connection each, without
// and with --reuse http (the tracker parsing every byte both ways).
func BenchmarkRelayHTTP(b *testing.B) {
	for _, mode := range []string{"keepalive", "short"} {
		for _, tc := range []struct {
			name  string
			reuse recycle.Protocol
		}{{"default", nil}, {"reuse", recycle.HTTP}} {
			b.Run(mode+"/"+tc.name, func(b *testing.B) {
				_, addr := startForwarder(b, Config{Remote: startHTTPUpstream(b), Reuse: tc.reuse, Pool: pool.Options{Warm: 2}})
				b.SetBytes(16 << 10)
				b.ReportAllocs()
				var c net.Conn
				var br *bufio.Reader
				b.ResetTimer()
				for range b.N {
					if c == nil {
						var err error
						if c, err = net.Dial("tcp", addr); err != nil {
							b.Fatal(err)
						}
						br = bufio.NewReader(c)
					}
					if _, err := httpGet(c, br, "x?n=16384"); err != nil {
						b.Fatal(err)
					}
					if mode == "short" {
						c.Close()
						c = nil
					}
				}
				if c != nil {
					c.Close()
				}
			})
		}
	}
}
