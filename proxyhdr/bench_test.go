package proxyhdr

import (
	"io"
	"net"
	"testing"
)

// BenchmarkHeader is the per-connection cost of --proxy-protocol: building
// the header, and building and writing it to a real 127.0.0.1 socket (one
// extra write(2) unless the forwarder sends it with the client's first
// bytes).
func BenchmarkHeader(b *testing.B) {
	for _, tt := range []struct {
		name string
		v    Version
	}{{"v1", V1}, {"v2", V2}} {
		b.Run(tt.name+"/build/tcp4", func(b *testing.B) {
			for b.Loop() {
				if _, err := Header(tt.v, client4, local4); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/build/tcp6", func(b *testing.B) {
			for b.Loop() {
				if _, err := Header(tt.v, client6, local6); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/build+write/tcp4", func(b *testing.B) {
			up := drainedConn(b)
			c := fakeConn{client4, local4}
			for b.Loop() {
				if err := Write(up, tt.v, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// drainedConn is a 127.0.0.1 connection whose far end reads everything.
func drainedConn(b *testing.B) net.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, s)
		s.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
