// White-box (package pool): it asks the probe itself (check) about one
// socket in each state the kernel can show, which the public API shows only
// mixed with the pool's policy.
package pool

import (
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

func TestProbe(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "aix" {
		t.Skip("no liveness probe on " + runtime.GOOS)
	}
	echo := testsrv.Echo
	greet := func(c net.Conn, _ func()) {
		if _, err := io.WriteString(c, greeting); err == nil {
			echo(c, nil)
		}
	}
	greetAndClose := func(c net.Conn, _ func()) { io.WriteString(c, greeting) }
	closeAtOnce := func(net.Conn, func()) {}
	isEOF := func(err error) bool { return errors.Is(err, io.EOF) }
	isErr := func(err error) bool { return err != nil }
	for _, tt := range []struct {
		name    string
		handle  testsrv.Handler
		linux   bool                             // needs TCP_INFO
		prepare func(t *testing.T, c halfCloser) // then wait until probe's answer settles
		strict  bool
		want    health
		wantErr func(error) bool // nil: no error
	}{
		{name: "quiet", handle: echo, want: quiet},
		{name: "quiet, strict", handle: echo, strict: true, want: quiet},
		{
			name: "past deadline is cleared", handle: echo, want: quiet,
			prepare: func(t *testing.T, c halfCloser) { c.SetDeadline(time.Now().Add(-time.Second)) },
		},
		{name: "greeting pending", handle: greet, want: pending},
		{name: "peer closed", handle: closeAtOnce, wantErr: isEOF},
		{name: "greeting then close", handle: greetAndClose, linux: true, wantErr: isErr},
		{
			name: "closed locally", handle: echo, wantErr: func(err error) bool { return errors.Is(err, net.ErrClosed) },
			prepare: func(t *testing.T, c halfCloser) { c.Close() },
		},
		{
			name: "write side shut down, strict", handle: echo, linux: true, strict: true, wantErr: isErr,
			prepare: func(t *testing.T, c halfCloser) { c.CloseWrite() },
		},
	} {
		for _, network := range []string{"tcp", "unix"} {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				if tt.linux && runtime.GOOS != "linux" {
					t.Skip("needs TCP_INFO")
				}
				c := dialProbed(t, network, tt.handle)
				defer c.Close()
				var err error
				if tt.prepare != nil {
					tt.prepare(t, c)
				}
				var h health
				// The server acts asynchronously: wait for the expected answer,
				// then check it is exactly that.
				for deadline := time.Now().Add(testsrv.Timeout); ; time.Sleep(time.Millisecond) {
					h, err = check(c, tt.strict)
					if (tt.wantErr != nil && err != nil) || (tt.wantErr == nil && (h == tt.want || err != nil)) || time.Now().After(deadline) {
						break
					}
				}
				switch {
				case tt.wantErr == nil && (err != nil || h != tt.want):
					t.Fatalf("probe: got %d, %v; want %d, nil", h, err, tt.want)
				case tt.wantErr != nil && !tt.wantErr(err):
					t.Fatalf("probe: got %d, %v; want a matching error", h, err)
				}
				if tt.want == pending {
					b := make([]byte, len(greeting))
					if _, err := io.ReadFull(c, b); err != nil || string(b) != greeting {
						t.Fatalf("after the probe, read got %q, %v; want the whole greeting %q", b, err, greeting)
					}
				}
			})
		}
	}
}

// greeting is what a server that speaks first sends (an SSH banner).
const greeting = "SSH-2.0-test\r\n"

// halfCloser is a TCP or Unix stream connection.
type halfCloser interface {
	net.Conn
	syscall.Conn
	CloseWrite() error
}

// dialProbed connects to a testsrv.Server on network (TCP on 127.0.0.1, or
// a Unix socket in a temporary directory) that runs handle on the connection.
func dialProbed(t testing.TB, network string, handle testsrv.Handler) halfCloser {
	t.Helper()
	c, err := net.Dial(network, testsrv.Serve(t, network, "", handle).Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(halfCloser)
}

// BenchmarkProbe is the liveness check of one borrow.
func BenchmarkProbe(b *testing.B) {
	c := dialProbed(b, "tcp", testsrv.Echo)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := check(c, false); err != nil {
			b.Fatal(err)
		}
	}
}
