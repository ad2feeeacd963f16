package main

import (
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// binaryHasUnix says whether the warmport under test relays Unix sockets:
// non-Linux builds refuse unix:PATH as a usage error.
func binaryHasUnix() bool { return runtime.GOOS == "linux" }

// unixEcho dials the Unix socket at path, sends msg, shuts down its write
// side and checks that msg comes back, then EOF.
func unixEcho(t *testing.T, path, msg string) {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Fatalf("dial unix:%s: %v", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, msg)
	c.(*net.UnixConn).CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != msg {
		t.Fatalf("echo through unix:%s: got %q, %v; want %q", path, got, err, msg)
	}
}

// unixEchoServer serves an echo on a Unix socket in a temporary directory
// until the test ends and returns its path.
func unixEchoServer(t *testing.T) string {
	t.Helper()
	return testsrv.Serve(t, "unix", "", testsrv.Echo).Addr()
}

func TestUnixSockets(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echo)
	if !binaryHasUnix() {
		r := runWarmport(t, "forward", "unix:"+filepath.Join(t.TempDir(), "s.sock"), up.addr())
		if r.status != 2 || !strings.Contains(r.stderr, "not supported on this platform yet") {
			t.Fatalf("unix:PATH on a build without Unix sockets: status %d, stderr %q; want 2 and a line saying so", r.status, r.stderr)
		}
		return
	}

	t.Run("LOCAL socket file, SIGTERM removes it", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "s.sock")
		p := startWarmport(t, "forward", "--json", "unix:"+path, up.addr())
		if got, want := p.waitReady(t), "unix:"+path; got != want {
			t.Fatalf("ready line names %q; want %q", got, want)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket file mode %v; want a socket, 0600", fi.Mode())
		}
		unixEcho(t, path, "through a Unix LOCAL")
		r := p.stop(t)
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("after SIGTERM: Lstat %v; want the socket file removed", err)
		}
		sum := parseSummary(t, r.stdout)
		if sum.Local != "unix:"+path || len(sum.Connections) != 1 || sum.Connections[0].Client != "unix:"+path {
			t.Errorf("summary: local %q, connections %+v; want local and the one client named unix:%s", sum.Local, sum.Connections, path)
		}
	})

	t.Run("REMOTE unix:PATH", func(t *testing.T) {
		t.Parallel()
		remote := "unix:" + unixEchoServer(t)
		p := startWarmport(t, "forward", "--json", "0", remote)
		addr := p.waitReady(t)
		echoOnce(t, addr, "to a Unix REMOTE")
		sum := parseSummary(t, p.stop(t).stdout)
		if len(sum.Connections) != 1 || sum.Connections[0].Upstream != remote {
			t.Errorf("records %+v; want one whose upstream is %s", sum.Connections, remote)
		}
	})

	t.Run("stale socket file is replaced", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "s.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		p := startWarmport(t, "forward", "unix:"+path, up.addr())
		p.waitReady(t)
		unixEcho(t, path, "through a replaced socket")
		p.stop(t)
	})

	t.Run("live socket file is in use", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "s.sock")
		first := startWarmport(t, "forward", "unix:"+path, up.addr())
		first.waitReady(t)
		r := runWarmport(t, "forward", "unix:"+path, up.addr())
		if r.status != 1 || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, "warmport: ") || !strings.Contains(r.stderr, "in use") {
			t.Errorf("second forwarder on a live socket: status %d, stderr %q; want 1 and one line saying it is in use", r.status, r.stderr)
		}
		unixEcho(t, path, "the first one still serves")
		first.stop(t)
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name, local string
			status      int
			errHas      string
		}{
			{"directory missing", "unix:" + filepath.Join(t.TempDir(), "nodir", "s.sock"), 1, "does not exist"},
			{"path too long", "unix:/" + strings.Repeat("p", 120), 2, "107"},
		} {
			r := runWarmport(t, "forward", tt.local, up.addr())
			if r.status != tt.status || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tt.errHas) {
				t.Errorf("%s: status %d, stderr %q; want %d and one line containing %q", tt.name, r.status, r.stderr, tt.status, tt.errHas)
			}
		}
	})

	t.Run("child mode environment", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "s.sock")
		r := runWarmport(t, "forward", "unix:"+path, up.addr(), "--", "sh", "-c", `printf '%s|%s|' "$WARMPORT_ADDR" "$WARMPORT_PORT"; [ -n "${WARMPORT_PORT+set}" ] && echo set`)
		if want := "unix:" + path + "||set\n"; r.status != 0 || r.stdout != want {
			t.Errorf("child saw %q (status %d); want %q: WARMPORT_ADDR unix:PATH, WARMPORT_PORT set and empty\nstderr:\n%s", r.stdout, r.status, want, r.stderr)
		}
	})
}
