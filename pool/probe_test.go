package pool

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
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
				waitFor(t, "the probe's answer", func() bool {
					h, err = check(c, tt.strict)
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
}

// halfCloser is a TCP or Unix stream connection.
type halfCloser interface {
	net.Conn
	syscall.Conn
	CloseWrite() error
}

// dialProbed connects to a server on network (TCP on 127.0.0.1, or a Unix
// socket in a temporary directory) that runs handle on the connection.
func dialProbed(t *testing.T, network string, handle func(net.Conn)) halfCloser {
	t.Helper()
	if network == "tcp" {
		c, err := startUpstream(t, handle).dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "up.sock"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-served })
	go func() {
		defer close(served)
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		handle(sc)
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.UnixConn)
}
