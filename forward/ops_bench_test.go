//go:build unix

package forward

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/allowlist"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/proxyhdr"
)

// BenchmarkOpsShortConn is BenchmarkRelayShortConn (warm) with each
// operations feature on, for what each costs a connection: ns/op is the
// client's wall time, cpu-us/op the whole process's CPU (client, upstream
// and forwarder: compare rows, not absolutes).
func BenchmarkOpsShortConn(b *testing.B) {
	wide := make([]string, 0, 1000)
	for i := 0; i < 999; i++ {
		wide = append(wide, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	wide = append(wide, "127.0.0.0/8") // the client's: the last rule
	for _, tc := range []struct {
		name   string
		allow  []string
		proxy  proxyhdr.Version
		remote func(up string) string
	}{
		{name: "base"},
		{name: "allow-1", allow: []string{"127.0.0.0/8"}},
		{name: "allow-1000", allow: wide},
		{name: "proxy-v1", proxy: proxyhdr.V1},
		{name: "proxy-v2", proxy: proxyhdr.V2},
		{name: "candidates-2", remote: func(up string) string { return up + ",127.0.0.1:1" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			handler := echo
			if tc.proxy != 0 {
				handler = skipHeader(tc.proxy)
			}
			up := startUpstream(b, handler).addr()
			remote := up
			if tc.remote != nil {
				remote = tc.remote(up)
			}
			allow, err := allowlist.Parse(tc.allow)
			if err != nil {
				b.Fatal(err)
			}
			_, addr := startForwarder(b, Config{Remote: remote, Allow: allow, ProxyProtocol: tc.proxy, Pool: pool.Options{Warm: 2}})
			cpu0 := cpuTime()
			benchShort(b, addr)
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// skipHeader reads and drops a PROXY header of version v (TCP4 from
// 127.0.0.1), then echoes.
func skipHeader(v proxyhdr.Version) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		n := 28 // v2, TCP4
		if v == proxyhdr.V1 {
			// "PROXY TCP4 127.0.0.1 127.0.0.1 PORT PORT\r\n": read to the LF.
			var one [1]byte
			for {
				if _, err := c.Read(one[:]); err != nil || one[0] == '\n' {
					break
				}
			}
			n = 0
		}
		if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
			return
		}
		echo(c)
	}
}

// cpuTime is the process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
