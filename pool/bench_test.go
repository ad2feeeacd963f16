package pool_test

import (
	"context"
	"net"
	"testing"

	. "github.com/warmport/warmport/pool"
)

// BenchmarkGetPut borrows and returns a connection: after the first round
// every Get is served from the pool (Reused) and every Put recycles.
func BenchmarkGetPut(b *testing.B) {
	for _, bb := range []struct {
		name string
		warm int
	}{
		{"warm=0", 0},
		{"warm=1", 1},
	} {
		b.Run(bb.name, func(b *testing.B) {
			u := startUpstream(b, echo)
			p, err := New(Config[*net.TCPConn]{Dial: u.dial, Warm: bb.warm})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, _, _, err := p.Get(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Put(c); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s := p.Stats()
			b.ReportMetric(float64(s.Dials), "dials")
		})
	}
}
