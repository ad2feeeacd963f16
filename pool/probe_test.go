package pool

import (
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "aix" {
		t.Skip("no liveness probe on " + runtime.GOOS)
	}
	isEOF := func(err error) bool { return errors.Is(err, io.EOF) }
	isErr := func(err error) bool { return err != nil }
	for _, tt := range []struct {
		name    string
		handle  func(net.Conn)
		linux   bool                               // needs TCP_INFO
		prepare func(t *testing.T, c *net.TCPConn) // then wait until probe's answer settles
		strict  bool
		want    health
		wantErr func(error) bool // nil: no error
	}{
		{name: "quiet", handle: echo, want: quiet},
		{name: "quiet, strict", handle: echo, strict: true, want: quiet},
		{
			name: "past deadline is cleared", handle: echo, want: quiet,
			prepare: func(t *testing.T, c *net.TCPConn) { c.SetDeadline(time.Now().Add(-time.Second)) },
		},
		{name: "greeting pending", handle: greet, want: pending},
		{name: "peer closed", handle: closeAtOnce, wantErr: isEOF},
		{name: "greeting then close", handle: greetAndClose, linux: true, wantErr: isErr},
		{
			name: "closed locally", handle: echo, wantErr: func(err error) bool { return errors.Is(err, net.ErrClosed) },
			prepare: func(t *testing.T, c *net.TCPConn) { c.Close() },
		},
		{
			name: "write side shut down, strict", handle: echo, linux: true, strict: true, wantErr: isErr,
			prepare: func(t *testing.T, c *net.TCPConn) { c.CloseWrite() },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.linux && runtime.GOOS != "linux" {
				t.Skip("needs TCP_INFO")
			}
			u := startUpstream(t, tt.handle)
			c, err := u.dial(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.prepare != nil {
				tt.prepare(t, c)
			}
			var h health
			// The server acts asynchronously: wait for the expected answer,
			// then check it is exactly that.
			waitFor(t, "the probe's answer", func() bool {
				h, err = probe(c, tt.strict)
				if tt.wantErr != nil {
					return err != nil
				}
				return h == tt.want || err != nil
			})
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
