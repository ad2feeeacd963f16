package forward

import (
	"io"
	"net"
	"testing"

	"github.com/warmport/warmport/pool"
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
