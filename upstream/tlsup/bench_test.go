//go:build unix

package tlsup

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// The benchmarks that need a server outside this process (stunnel4, socat)
// report this process's CPU per operation (cpu-ns/op): the client's side
// alone.

// cpuNow returns this process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// socatServer starts socat listening on 127.0.0.1 with a fork per
// connection, the other end being target (OPEN:/dev/null, OPEN:/dev/zero).
func socatServer(b testing.TB, target string) string {
	b.Helper()
	bin := testsrv.Need(b, "socat", "socat")
	port := strconv.Itoa(testsrv.FreePort(b))
	testsrv.MustStart(b, exec.Command(bin, "-d", "-d", "TCP-LISTEN:"+port+",bind=127.0.0.1,reuseaddr,fork", target), "listening on")
	return "127.0.0.1:" + port
}

// BenchmarkHandshake: Dial to redis-server's TLS port (OpenSSL, one event
// loop: no thread or process per connection to time), a full handshake
// against one resumed from the session cache, as pool refills do.
func BenchmarkHandshake(b *testing.B) {
	ca := tlstest.NewCA(b, "bench CA")
	for _, v := range []struct {
		name string
		args []string
	}{{"TLS1.3", nil}, {"TLS1.2", []string{"--tls-protocols", "TLSv1.2"}}} {
		addr := redisTLS(b, ca, v.args...)
		for _, resume := range []bool{false, true} {
			name := v.name + "/full"
			if resume {
				name = v.name + "/resumed"
			}
			b.Run(name, func(b *testing.B) {
				cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
				if err != nil {
					b.Fatal(err)
				}
				if !resume {
					cfg.ClientSessionCache = nil
				} else {
					// A TLS 1.3 server's tickets come after the handshake:
					// take them in once, as the pool's probe does.
					c := handshakeOnly(b, addr, cfg)
					if c.ConnectionState().Version == tls.VersionTLS13 {
						waitQueued(b, c)
					}
					c.Probe()
					c.Close()
				}
				resumed := 0
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuNow()
				for i := 0; i < b.N; i++ {
					raw, err := net.Dial("tcp", addr)
					if err != nil {
						b.Fatal(err)
					}
					c, err := Dial(context.Background(), raw, cfg)
					if err != nil {
						b.Fatal(err)
					}
					if c.ConnectionState().DidResume {
						resumed++
					}
					c.Close()
				}
				b.ReportMetric(float64(cpuNow()-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(resumed)/float64(b.N), "resumed/op")
			})
		}
	}
}

// BenchmarkProbe: the probe on borrow of a quiet connection (one peek) and
// of one with a TLS 1.3 session ticket queued (the ticket processed).
func BenchmarkProbe(b *testing.B) {
	ca := tlstest.NewCA(b, "bench CA")
	b.Run("quiet", func(b *testing.B) {
		s := localServer(b, ca, tlstest.ServerOptions{Handle: tlstest.Hold})
		c := mustDial(b, s.Addr, Options{CAFile: ca.File}, "127.0.0.1")
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Probe(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ticket-queued", func(b *testing.B) {
		s := localServer(b, ca, tlstest.ServerOptions{RequestCert: true, Handle: tlstest.Hold})
		cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			// A fresh cache: a resumed handshake would bring the ticket
			// with the server's first flight, not after.
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			c := handshakeOnly(b, s.Addr, cfg)
			waitQueued(b, c)
			b.StartTimer()
			err := c.Probe()
			b.StopTimer()
			if err != nil || c.Buffered() != 0 {
				b.Fatalf("Probe: %v, %d buffered", err, c.Buffered())
			}
			c.Abort()
		}
	})
}

// BenchmarkBulk: bytes through Conn to stunnel4, whose backend is socat on
// /dev/null (up) or /dev/zero (down), in 64 KiB writes or reads.
func BenchmarkBulk(b *testing.B) {
	ca := tlstest.NewCA(b, "bench CA")
	const chunk = 64 << 10
	for _, dir := range []struct {
		name, target string
	}{{"up", "OPEN:/dev/null"}, {"down", "OPEN:/dev/zero"}} {
		addr := stunnelTLS(b, ca, socatServer(b, dir.target))
		b.Run(dir.name, func(b *testing.B) {
			c := mustDial(b, addr, Options{CAFile: ca.File}, "127.0.0.1")
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuNow()
			for i := 0; i < b.N; i++ {
				var err error
				if dir.name == "up" {
					_, err = c.Write(buf)
				} else {
					_, err = io.ReadFull(c, buf)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuNow()-cpu)/float64(b.N)*float64(1<<30)/chunk/1e9, "cpu-s/GiB")
		})
	}
}
