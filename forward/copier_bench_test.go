package forward

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
)

// BenchmarkCopierIdleMemory holds idlePairs idle pairs on the copier (each
// relayed one byte both ways, then both directions wait in Read) and reports
// what one costs the process in heap and stacks, over the same number of
// direct connections to the same upstream (whose goroutines and buffers
// both runs hold). Run it once: -bench CopierIdleMemory -benchtime 1x.
func BenchmarkCopierIdleMemory(b *testing.B) {
	defer func(e string) { testEngine = e }(testEngine)
	testEngine = "copier"
	const idlePairs = 200
	up := startUpstream(b, echo)
	_, addr := startForwarder(b, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	direct := idleCost(b, up.addr(), idlePairs)
	relayed := idleCost(b, addr, idlePairs)
	for range b.N {
	}
	b.ReportMetric(float64(relayed-direct), "B/idle-pair")
}

// BenchmarkCopierRelayBulk is BenchmarkRelayBulk on the copier: what the
// copier's buffers cost a stream that never idles.
func BenchmarkCopierRelayBulk(b *testing.B) {
	defer func(e string) { testEngine = e }(testEngine)
	testEngine = "copier"
	BenchmarkRelayBulk(b)
}

// idleCost dials n connections to addr, makes a one-byte round trip on
// each, and returns the heap and stack bytes in use per connection while
// they are all open and idle.
func idleCost(b *testing.B, addr string, n int) int64 {
	b.Helper()
	goroutines, base := runtime.NumGoroutine(), inUse()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		if _, err := c.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
	}
	held := inUse()
	for _, c := range conns {
		c.Close()
	}
	// The next measurement starts once these connections' goroutines (the
	// upstream's, the copier's) are gone.
	for deadline := time.Now().Add(testTimeout); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return (held - base) / int64(n)
}

// inUse is the heap and goroutine stacks in use after a collection.
func inUse() int64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first found unreachable in sync.Pool's victim cache
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}
