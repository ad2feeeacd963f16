package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// startSocketActivate runs systemd-socket-activate with its options, then
// warmport with args; it returns once the socket listens. The process is
// warmport's from the first connection on (systemd-socket-activate execs it).
func startSocketActivate(t *testing.T, opts []string, args ...string) *proc {
	t.Helper()
	full := append([]string{}, opts...)
	// It gives the program only what -E names, never its own environment.
	for _, e := range []string{"NO_COLOR=1", "HOME=" + t.TempDir(), "WARMPORT_STATE_DIR=" + t.TempDir()} {
		full = append(full, "-E", e)
	}
	full = append(append(full, warmportBin), args...)
	p := startProc(t, exec.Command(testsrv.Need(t, "systemd-socket-activate", "systemd"), full...))
	for i, o := range opts {
		if o == "-l" {
			waitStderr(t, p, "Listening on "+opts[i+1]+" ")
		}
	}
	return p
}

// Under the real systemd-socket-activate: the first connection starts
// warmport on the passed socket (TCP, a Unix socket, one chosen by name);
// it serves, and exits 0 when idle, leaving a Unix socket's file, which is
// systemd's, in place.
func TestSocketActivation(t *testing.T) {
	up := startUpstream(t, echo)
	dir := t.TempDir()
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
	otherAddr := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
	unixPath := filepath.Join(dir, "db.sock")
	tests := []struct {
		name          string
		opts          []string
		local         string
		network, addr string
	}{
		{"tcp", []string{"-l", tcpAddr}, "systemd", "tcp", tcpAddr},
		{"unix", []string{"-l", unixPath}, "systemd", "unix", unixPath},
		{"by name", []string{"-l", otherAddr, "-l", tcpAddr, "--fdname", "other:db"}, "systemd:db", "tcp", tcpAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.network == "unix" && !binaryHasUnix() {
				t.Skip("this build has no Unix sockets (TestUnixSockets checks it says so)")
			}
			p := startSocketActivate(t, tt.opts, "forward", "--json", "--exit-idle", "300ms", tt.local, up.addr())
			for i := 0; i < 3; i++ {
				if err := echoVia(tt.network, tt.addr, "hello\n"); err != nil {
					t.Fatalf("client %d: %v\nstderr:\n%s", i, err, p.Output())
				}
			}
			res := p.wait(t, exitTimeout)
			if res.status != 0 || !strings.Contains(res.stderr, "no connection for 300ms, exiting") {
				t.Errorf("exit status %d; want 0 after --exit-idle\nstderr:\n%s", res.status, res.stderr)
			}
			want := tt.addr
			if tt.network == "unix" {
				want = "unix:" + tt.addr
			}
			if got := p.readyAddr(); got != want {
				t.Errorf("ready line's address: got %s; want %s", got, want)
			}
			s := parseSummary(t, res.stdout)
			if s.Totals.Connections != 3 || s.Local != want {
				t.Errorf("summary: %d connections on %s; want 3 on %s", s.Totals.Connections, s.Local, want)
			}
			if tt.network == "unix" {
				if _, err := os.Stat(tt.addr); err != nil {
					t.Errorf("the passed socket's file after exit: %v; want it left to systemd", err)
				}
			}
		})
	}
}

// echoVia sends msg on network/addr, half-closes, and returns nil only if
// msg came back whole, then EOF.
func echoVia(network, addr, msg string) error {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		return fmt.Errorf("echo through %s: got %q, %v; want %q, then EOF", addr, got, err, msg)
	}
	return nil
}

// Scale to zero on demand with the real binary: the first connection
// starts warmport, it serves, exits 0 when idle, the next connection
// starts it again, and no client is refused, reset or left unanswered,
// including those that arrive while warmport is exiting.
func TestSocketActivationScaleToZero(t *testing.T) {
	up := startUpstream(t, echo)
	s := testsrv.StartStandIn(t, append(baseEnv(), "NO_COLOR=1", "WARMPORT_STATE_DIR="+t.TempDir()),
		warmportBin, "forward", "--exit-idle", "150ms", "systemd", up.addr())
	for round := 0; round < 3; round++ {
		for i := 0; i < 2; i++ {
			if err := echoVia("tcp", s.Addr, "hello\n"); err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
		}
		s.WaitExit(t)
	}
	// Clients at gaps short and past the idle time in turn: some land
	// while warmport is going away.
	s.Load(10, func(i int) {
		if err := echoVia("tcp", s.Addr, "again\n"); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	})
	// 3 rounds, then 5 gaps past the idle time (the last exit may not be in).
	s.WantExits(t, 7)
	exits := s.Exits()
	if n := strings.Count(s.Stderr(), "warmport: forwarding "+s.Addr+" -> "); n < len(exits) {
		t.Errorf("ready lines: got %d; want one per start (%d)", n, len(exits))
	}
}
