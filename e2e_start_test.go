package main

// End-to-end tests of what a first-time user meets at start: suggested
// commands that work, a REMOTE that cannot be reached, --require-remote and
// --json-file.

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// TestSuggestedCommandsWork: a usage error that suggests a command suggests
// one that runs: each suggestion, run by a shell, starts the forwarder with
// the flags and values typed.
func TestSuggestedCommandsWork(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echo)
	for _, tc := range []struct {
		name   string
		args   []string
		tail   string // appended to the suggestion so it ends by itself
		status int
	}{
		{"flag and value after", []string{"forward", "0", up.addr(), "--warm", "4"}, " -- true", 0},
		{"flags before and after", []string{"forward", "-q", "0", up.addr(), "--warm=3", "--json"}, " -- true", 0},
		{"command without --", []string{"forward", "0", up.addr(), "sh", "-c", "exit 3"}, "", 3},
		{"flag after, then a command", []string{"forward", "0", up.addr(), "--warm", "1", "--", "sh", "-c", "exit 4"}, "", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runWarmport(t, tc.args...)
			_, fix, ok := strings.Cut(strings.TrimSpace(r.stderr), ": warmport forward ")
			if r.status != 2 || !ok {
				t.Fatalf("warmport %q: status %d, stderr %q; want 2 and a suggested command", tc.args, r.status, r.stderr)
			}
			// fix may itself contain ": warmport forward " only if typed so; here it does not.
			line := "warmport forward " + fix + tc.tail
			cmd := exec.Command("bash", "-c", line)
			cmd.Env = append(baseEnv(), "PATH="+filepath.Dir(warmportBin)+":"+os.Getenv("PATH"), "WARMPORT_STATE_DIR="+t.TempDir(), "NO_COLOR=1")
			s := startProc(t, cmd).wait(t, exitTimeout)
			if s.status != tc.status || !readyRE.MatchString(s.stderr) {
				t.Errorf("the suggestion %q: status %d; want %d and the ready line\nstdout:\n%s\nstderr:\n%s", line, s.status, tc.status, s.stdout, s.stderr)
			}
		})
	}
}

// TestUnreachableRemote: a REMOTE that does not resolve or refuses gets one
// warning line at start, whatever the retries, and the forwarder serves on;
// with --require-remote it exits 1 before the ready line.
func TestUnreachableRemote(t *testing.T) {
	t.Parallel()
	refused := "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))
	for _, tc := range []struct{ name, remote, why string }{
		{"does not resolve", "does-not-exist.invalid:80", "does-not-exist.invalid"},
		{"refused", refused, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startWarmport(t, "forward", "--warm", "4", "0", tc.remote)
			addr := p.waitReady(t)
			waitStderr(t, p, "warning: cannot reach "+tc.remote)
			// A client gets closed (its dial fails too) and the forwarder goes on.
			for range 2 {
				c, err := net.DialTimeout("tcp", addr, exitTimeout)
				if errors.Is(err, syscall.ECONNRESET) {
					continue // the forwarder's reset came before connect returned: closed too
				}
				if err != nil {
					t.Fatalf("dial the forwarder: %v", err)
				}
				c.SetDeadline(time.Now().Add(exitTimeout))
				if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
					t.Errorf("client read: %d bytes, %v; want the connection closed", n, err)
				}
				c.Close()
			}
			r := p.stop(t)
			warnings := strings.Count(r.stderr, "warning: cannot reach")
			if warnings != 1 || !strings.Contains(r.stderr, tc.why) {
				t.Errorf("stderr: %d warnings; want 1 saying %q\n%s", warnings, tc.why, r.stderr)
			}
			if first := lines(r.stderr)[0]; !readyRE.MatchString(first) {
				t.Errorf("first line of stderr: got %q; want the ready line, then the warning", first)
			}
		})
	}

	t.Run("--require-remote refused", func(t *testing.T) {
		t.Parallel()
		r := runWarmport(t, "forward", "--require-remote", "0", refused)
		if r.status != 1 || readyRE.MatchString(r.stderr) || len(lines(r.stderr)) != 1 ||
			!strings.HasPrefix(r.stderr, "warmport: cannot reach "+refused) {
			t.Errorf("status %d, stderr %q; want 1 and one line saying it cannot reach %s, no ready line", r.status, r.stderr, refused)
		}
	})
	t.Run("--require-remote up", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, echo)
		p := startWarmport(t, "forward", "--require-remote", "0", up.addr())
		p.waitReady(t)
		if r := p.stop(t); strings.Contains(r.stderr, "warning") {
			t.Errorf("stderr: %q; want no warning", r.stderr)
		}
	})
}

// TestJSONFile: --json-file writes the summary, with every contract key, to
// PATH, while COMMAND's stdout stays COMMAND's alone.
func TestJSONFile(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echo)
	path := filepath.Join(t.TempDir(), "session.json")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := startWarmportEnv(t, []string{"NO_COLOR=1", helperEnv + "=dial"}, "forward", "-q", "--json-file", path, "0", up.addr(), "--", self)
	r := p.wait(t, exitTimeout)
	if r.status != 0 || !strings.HasPrefix(r.stdout, "helper: ") || strings.Contains(r.stdout, "{") {
		t.Fatalf("status %d, stdout %q; want 0 and the command's line only\nstderr:\n%s", r.status, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkContractKeys(t, string(b))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, ok := m["dropped"]; !ok || len(parseSummary(t, string(b)).Connections) != 1 {
		t.Errorf("%s: %s; want \"dropped\" and the command's one connection", path, b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, %v; want 0600", path, fi.Mode().Perm(), err)
	}

	// No session, no file: an empty one must not pass for a summary.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, args := range [][]string{
		{busy.Addr().String(), up.addr()},
		{"--require-remote", "0", "127.0.0.1:1"},
		{"0", up.addr(), "--", "/nonexistent/command"},
	} {
		gone := filepath.Join(t.TempDir(), "session.json")
		r := runWarmport(t, append([]string{"forward", "--json-file", gone}, args...)...)
		if _, err := os.Stat(gone); r.status == 0 || !os.IsNotExist(err) {
			t.Errorf("forward %q: status %d, file: %v; want a failure and no file", args, r.status, err)
		}
	}
}

// TestBenchBounds: bench's numbers outside their documented bounds, and
// negative durations, are usage errors of one line, before anything runs.
func TestBenchBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		has  string
	}{
		{[]string{"--interval", "-1s"}, "--interval -1s: must not be negative"},
		{[]string{"--setup-delay", "-5ms"}, "--setup-delay -5ms: must not be negative"},
		{[]string{"--timeout", "-1s"}, "--timeout -1s: must not be negative"},
		{[]string{"--timeout", "0s"}, "--timeout 0: must be more than 0"},
		{[]string{"--clients", "0"}, "1 to 10000"},
		{[]string{"--clients", "10001"}, "1 to 10000"},
		{[]string{"--warm", "9"}, "1 to 8"},
		{[]string{"--timeout", "5"}, "missing unit: write 5s"},
		{[]string{"127.0.0.1:1", "--clients", "5"}, "warmport bench --clients 5 127.0.0.1:1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runWarmport(t, append([]string{"bench"}, tc.args...)...)
			if r.status != 2 || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, tc.has) || r.stdout != "" {
				t.Errorf("bench %q: status %d, stderr %q, stdout %q; want 2 and one line saying %q", tc.args, r.status, r.stderr, r.stdout, tc.has)
			}
		})
	}
}

// TestSummaryAfterCtrlC: on a terminal, Ctrl-C (the terminal echoes ^C where
// the cursor is) is followed by the summary on a line of its own. script(1)
// gives warmport a pseudo-terminal, and the ^C typed into it is a real one.
func TestSummaryAfterCtrlC(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script not found: install the Debian package bsdutils")
	}
	up := startUpstream(t, echo)
	cmd := exec.Command("script", "-qec", warmportBin+" forward 0 "+up.addr(), "/dev/null")
	cmd.Env = append(baseEnv(), "NO_COLOR=1", "WARMPORT_STATE_DIR="+t.TempDir())
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testsrv.MustStart(t, cmd, "") // the pseudo-terminal mixes stdout and stderr
	p.WaitOutput(t, "the ready line through script", readyRE.MatchString)
	in.Write([]byte{3}) // Ctrl-C
	p.Wait(t)
	got := strings.ReplaceAll(p.Output(), "\r", "")
	if !strings.Contains(got, "^C\nwarmport session ") {
		t.Errorf("the terminal: got\n%s\nwant ^C, then the summary on a line of its own", got)
	}
}
