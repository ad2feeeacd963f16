package sshvia

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// serverFor starts an in-process server that trusts e's key, and adds its
// host key to e's known_hosts.
func serverFor(t *testing.T, e *testEnv) *testServer {
	t.Helper()
	s := startServer(t, "127.0.0.1:0", newSigner(t), e.key)
	e.trust(t, s.port(), s.hostKey.PublicKey())
	return s
}

func TestEchoHalfCloseExactBytes(t *testing.T) {
	e := newEnv(t)
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	if got, want := tun.String(), "tester@"+s.addr; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
	ch := dial(t, tun, startTarget(t, echo))
	want := make([]byte, 3<<20+17)
	rand.Read(want)
	roundTrip(t, ch, want, want)
}

func TestDialRefused(t *testing.T) {
	e := newEnv(t)
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	closed := startTarget(t, closer)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name   string
		refuse string
		addr   string
		reason ssh.RejectionReason
		msg    string
	}{
		{"administratively prohibited", "port forwarding is disabled", closed, ssh.Prohibited, "port forwarding is disabled"},
		{"connect failed", "", dead, ssh.ConnectionFailed, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.setRefuse(tt.refuse)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ch, err := tun.Dial(ctx, tt.addr)
			if err == nil {
				ch.Close()
				t.Fatal("Dial succeeded; want a refusal")
			}
			var oe *ssh.OpenChannelError
			if !errors.As(err, &oe) {
				t.Fatalf("got %v; want an *ssh.OpenChannelError", err)
			}
			if oe.Reason != tt.reason || !strings.Contains(oe.Message, tt.msg) {
				t.Fatalf("got %v (%q); want %v with %q", oe.Reason, oe.Message, tt.reason, tt.msg)
			}
			if !strings.Contains(err.Error(), tt.reason.String()) {
				t.Fatalf("got %q; want the reason %q in it", err, tt.reason)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	e := newEnv(t)
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	const hello = "SSH-2.0-target\r\n"
	t.Run("quiet target is alive", func(t *testing.T) {
		ch := dial(t, tun, startTarget(t, echo))
		if err := ch.Probe(); err != nil {
			t.Fatalf("Probe: got %v; want nil", err)
		}
	})
	t.Run("closed target is dead", func(t *testing.T) {
		ch := dial(t, tun, startTarget(t, closer))
		waitWatcher(t, ch)
		if err := ch.Probe(); err != io.EOF {
			t.Fatalf("Probe: got %v; want io.EOF", err)
		}
	})
	t.Run("greeting kept for the client exactly once", func(t *testing.T) {
		ch := dial(t, tun, startTarget(t, banner(hello)))
		waitWatcher(t, ch)
		if err := ch.Probe(); err != nil {
			t.Fatalf("Probe: got %v; want nil", err)
		}
		if got := ch.Greeting(); got != len(hello) {
			t.Fatalf("Greeting() = %d; want %d", got, len(hello))
		}
		roundTrip(t, ch, []byte("ping"), []byte(hello+"ping"))
	})
	t.Run("greeting then close is dead", func(t *testing.T) {
		addr := startTarget(t, func(c *net.TCPConn) { c.Write([]byte(hello)) })
		ch := dial(t, tun, addr)
		select {
		case <-ch.wdone:
		case <-time.After(10 * time.Second):
			t.Fatal("watcher still reading after 10s")
		}
		if err := ch.Probe(); err != io.EOF {
			t.Fatalf("Probe: got %v; want io.EOF", err)
		}
	})
}

// TestDropHeals: a server that drops the connection fails the channels on
// it with the reason (never a clean EOF), and the tunnel comes back.
func TestDropHeals(t *testing.T) {
	e := newEnv(t)
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	target := startTarget(t, echo)
	active := dial(t, tun, target)
	idle := dial(t, tun, target)
	if _, err := active.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(active, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	s.drop()
	e.waitLog(t, "connection lost")
	if _, err := active.Read(make([]byte, 1)); !IsDropped(err) {
		t.Fatalf("Read on the active channel: got %v; want an error wrapping ErrDropped", err)
	}
	waitWatcher(t, idle)
	if err := idle.Probe(); !IsDropped(err) {
		t.Fatalf("Probe of the idle channel: got %v; want an error wrapping ErrDropped", err)
	}
	e.waitLog(t, "reconnected")
	ch := dial(t, tun, target)
	if err := ch.Probe(); err != nil {
		t.Fatalf("Probe after healing: got %v; want nil", err)
	}
}

// TestKeepaliveDead: a server that stops answering keepalives is dropped
// after ServerAliveCountMax intervals, and the tunnel redials.
func TestKeepaliveDead(t *testing.T) {
	e := newEnv(t)
	e.cfg.alive, e.cfg.aliveMax = 50*time.Millisecond, 3
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	idle := dial(t, tun, startTarget(t, echo))
	s.mute()
	line := e.waitLog(t, "connection lost")
	if !strings.Contains(line, "no answer to 3 keepalives") {
		t.Fatalf("got %q; want the keepalive named as the reason", line)
	}
	waitWatcher(t, idle)
	if err := idle.Probe(); !IsDropped(err) {
		t.Fatalf("Probe: got %v; want an error wrapping ErrDropped", err)
	}
	e.waitLog(t, "reconnected")
}

// TestDialWaitsForHealing: while the server is down Dial waits up to its
// context; once the port is back, Dial succeeds.
func TestDialWaitsForHealing(t *testing.T) {
	e := newEnv(t)
	e.cfg.backoff = 20 * time.Millisecond
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	target := startTarget(t, echo)
	s.stop()
	e.waitLog(t, "connection lost")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := tun.Dial(ctx, target)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "heal") {
		t.Fatalf("Dial while down: got %v; want a deadline while waiting to heal", err)
	}
	startServer(t, s.addr, s.hostKey, e.key)
	dial(t, tun, target)
}

// TestHostKeyChangesWhileDown: the server comes back with another host
// key; the tunnel says so in one line and does not connect.
func TestHostKeyChangesWhileDown(t *testing.T) {
	e := newEnv(t)
	e.cfg.backoff = 20 * time.Millisecond
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	s.stop()
	e.waitLog(t, "connection lost")
	impostor := startServer(t, s.addr, newSigner(t), e.key)
	line := e.waitLog(t, "reconnect failed: host key")
	if want := ssh.FingerprintSHA256(impostor.hostKey.PublicKey()); !strings.Contains(line, "CHANGED") || !strings.Contains(line, want) {
		t.Fatalf("got %q; want CHANGED and %s in it", line, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := tun.Dial(ctx, startTarget(t, echo)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: got %v; want to wait for healing until the deadline", err)
	}
}

func TestCloseFailsDial(t *testing.T) {
	e := newEnv(t)
	s := serverFor(t, e)
	tun := openTunnel(t, e, "tester@"+s.addr)
	tun.Close()
	_, err := tun.Dial(context.Background(), startTarget(t, echo))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v; want ErrClosed", err)
	}
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
