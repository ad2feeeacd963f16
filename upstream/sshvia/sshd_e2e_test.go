package sshvia

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestRealSSHD runs channels through OpenSSH's sshd, with the user key in
// an ssh-agent the test started: exact bytes with half-close, a kept
// greeting, sshd's refusals with their reasons.
func TestRealSSHD(t *testing.T) {
	echoAddr := startTarget(t, echo)
	const hello = "SSH-2.0-behind-the-bastion\r\n"
	bannerAddr := startTarget(t, banner(hello))
	dead := "127.0.0.1:" + strconv.Itoa(freePort(t))
	e, s := sshdEnv(t, "PermitOpen "+echoAddr+" "+bannerAddr+" "+dead)
	s.start()
	tun := openTunnel(t, e, currentUser(t)+"@"+s.addr())

	t.Run("exact bytes with half-close", func(t *testing.T) {
		ch := dial(t, tun, echoAddr)
		want := make([]byte, 5<<20+3)
		rand.Read(want)
		roundTrip(t, ch, want, want)
	})
	t.Run("greeting kept once", func(t *testing.T) {
		ch := dial(t, tun, bannerAddr)
		waitWatcher(t, ch)
		if err := ch.Probe(); err != nil {
			t.Fatalf("Probe: got %v; want nil", err)
		}
		roundTrip(t, ch, []byte("x"), []byte(hello+"x"))
	})
	tests := []struct {
		name   string
		addr   string
		reason ssh.RejectionReason
	}{
		{"not in PermitOpen", "127.0.0.1:1", ssh.Prohibited},
		{"nothing listening", dead, ssh.ConnectionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := tun.Dial(ctx, tt.addr)
			var oe *ssh.OpenChannelError
			if !errors.As(err, &oe) || oe.Reason != tt.reason {
				t.Fatalf("got %v; want an open refused as %v", err, tt.reason)
			}
			t.Logf("sshd said: %v", err)
		})
	}
}

// TestRealSSHDConnections: a tunnel of four connections: all log in to
// sshd (one agent key, no prompt), channels dialed one after another go to
// each in turn, and each relays exact bytes.
func TestRealSSHDConnections(t *testing.T) {
	echoAddr := startTarget(t, echo)
	e, s := sshdEnv(t)
	s.start()
	e.cfg.spreadRTT = time.Nanosecond // as if far: loopback would keep them on one
	const conns = 4
	e.cfg.Conns = conns
	tun := openTunnel(t, e, currentUser(t)+"@"+s.addr())
	waitConns(t, tun)
	seen := map[string]bool{}
	for i := range conns {
		ch := dial(t, tun, echoAddr)
		seen[ch.LocalAddr().String()] = true
		want := make([]byte, 64<<10+i)
		rand.Read(want)
		roundTrip(t, ch, want, want)
	}
	if len(seen) != conns {
		t.Fatalf("got channels on %d connections %v; want %d", len(seen), seen, conns)
	}
}

// TestRealSSHDHeals kills sshd (and its connection processes) while
// clients stream through it, then restarts it on the same port: every
// client ends with an error wrapping ErrDropped after only correct bytes,
// an idle channel probes dead, and the next Dial after the restart works
// with the default back-off; OnReconnect hears of the recovery once.
func TestRealSSHDHeals(t *testing.T) {
	echoAddr := startTarget(t, echo)
	e, s := sshdEnv(t)
	s.start()
	reconnects := make(chan struct{}, 4)
	e.cfg.OnReconnect = func() { reconnects <- struct{}{} }
	tun := openTunnel(t, e, currentUser(t)+"@"+s.addr())
	idle := dial(t, tun, echoAddr)

	const clients = 4
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	flowing := make(chan struct{}, clients)
	for i := 0; i < clients; i++ {
		ch := dial(t, tun, echoAddr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- streamEcho(ch, flowing)
		}()
	}
	for i := 0; i < clients; i++ {
		<-flowing
	}
	s.kill()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !IsDropped(err) {
			t.Errorf("client ended with %v; want an error wrapping ErrDropped", err)
		}
	}
	e.waitLog(t, "connection lost")
	waitWatcher(t, idle)
	if err := idle.Probe(); !IsDropped(err) {
		t.Fatalf("Probe of the idle channel: got %v; want ErrDropped", err)
	}

	back := s.start()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ch, err := tun.Dial(ctx, echoAddr)
	if err != nil {
		t.Fatalf("Dial after the restart: %v", err)
	}
	defer ch.Close()
	t.Logf("restart to the next successful Dial: %.2fs", time.Since(back).Seconds())
	e.waitLog(t, "reconnected")
	select {
	case <-reconnects:
	case <-ctx.Done():
		t.Fatal("OnReconnect not called after the recovery")
	}
	if n := len(reconnects); n != 0 {
		t.Errorf("OnReconnect calls: got %d more; want 1 in all", n)
	}
}

// streamEcho writes and reads back through ch until it fails, checking
// every byte; it signals flowing after the first round trip.
func streamEcho(ch *Channel, flowing chan<- struct{}) error {
	buf := make([]byte, 16<<10)
	got := make([]byte, len(buf))
	for i := 0; ; i++ {
		rand.Read(buf)
		if _, err := ch.Write(buf); err != nil {
			return err
		}
		if _, err := io.ReadFull(ch, got); err != nil {
			return err
		}
		if !bytes.Equal(got, buf) {
			return errors.New("echo returned other bytes")
		}
		if i == 0 {
			flowing <- struct{}{}
		}
	}
}

// TestRealSSHDProxyJump reaches sshd through itself as its own jump host,
// named by a Host alias of an SSH config: x/crypto's client on a channel
// of OpenSSH's, both host keys checked.
func TestRealSSHDProxyJump(t *testing.T) {
	needSSH(t)
	echoAddr := startTarget(t, echo)
	e, s := sshdEnv(t)
	s.start()
	conf := fmt.Sprintf("Host hop\n  HostName 127.0.0.1\n  Port %d\nHost inner\n  HostName 127.0.0.1\n  Port %d\n  ProxyJump hop\n", s.port, s.port)
	if err := os.WriteFile(filepath.Join(e.home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.SSHConfig = ""
	tun := openTunnel(t, e, "inner")
	ch := dial(t, tun, echoAddr)
	roundTrip(t, ch, []byte("through two"), []byte("through two"))
}

// TestRealSSHDUnixSocket reaches a Unix socket on the server's side
// (direct-streamlocal@openssh.com), as REMOTE unix:PATH with --via does.
func TestRealSSHDUnixSocket(t *testing.T) {
	e, s := sshdEnv(t)
	s.start()
	tun := openTunnel(t, e, currentUser(t)+"@"+s.addr())
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
		c.(*net.UnixConn).CloseWrite()
	}()
	ch := dial(t, tun, "unix:"+sock)
	roundTrip(t, ch, []byte("over a unix socket"), []byte("over a unix socket"))
}
