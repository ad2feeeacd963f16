package sshvia

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// startTarget serves each connection on 127.0.0.1 with fn until the test
// ends, and returns its address.
func startTarget(t testing.TB, fn func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// echo sends back what it reads, then half-closes.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// banner greets first, as sshd and MySQL do, then echoes.
func banner(greeting string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		c.Write([]byte(greeting))
		echo(c)
	}
}

// closer closes at once: an idle pooled channel to it is dead.
func closer(c *net.TCPConn) {}

// openTunnel opens a tunnel to s for e, closed at the end of the test.
func openTunnel(t testing.TB, e *testEnv, via string) *Tunnel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.cfg.Via = via
	tun, err := Open(ctx, e.cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { tun.Close() })
	return tun
}

func dial(t testing.TB, tun *Tunnel, addr string) *Channel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := tun.Dial(ctx, addr)
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { ch.Close() })
	return ch
}

// waitWatcher waits until the idle channel's watcher has read something:
// bytes, an EOF or a drop.
func waitWatcher(t testing.TB, ch *Channel) {
	t.Helper()
	select {
	case <-ch.first:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher still reading after 10s")
	}
}

// roundTrip sends p and half-closes, then checks that exactly want comes
// back before a clean EOF.
func roundTrip(t testing.TB, ch *Channel, p, want []byte) {
	t.Helper()
	go func() {
		ch.Write(p)
		ch.CloseWrite()
	}()
	got, err := io.ReadAll(ch)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		if len(want) > 64 {
			t.Fatalf("got %d bytes back; want the %d sent", len(got), len(want))
		}
		t.Fatalf("got %q; want %q", got, want)
	}
}
