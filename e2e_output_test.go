//go:build linux

package main

// End-to-end tests of output that cannot stop the relay and of SIGHUP
// (issue 18's findings 3 to 5): a stderr whose reader is gone, a stderr
// nobody reads, a closed stdout under --json, a closed terminal.

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startWarmportFiles runs warmport with its stdout and stderr on the given
// files (pipes the test holds), so that what it writes meets the kernel's
// pipe, not a goroutine of the test that always reads.
func startWarmportFiles(t *testing.T, dir string, stdout, stderr *os.File, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(warmportBin, args...)
	cmd.Env = append(baseEnv(), "NO_COLOR=1", "WARMPORT_STATE_DIR="+dir)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// waitCmd waits up to exitTimeout for cmd to end and returns its status.
func waitCmd(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(exitTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("warmport still running %v after it should have ended; killed it", exitTimeout)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// pipe returns a pipe's two ends, closed when the test ends.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		w.Close()
	})
	return r, w
}

// readLine reads one line a byte at a time, so that nothing after it is
// consumed.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for !strings.HasSuffix(b.String(), "\n") {
		if _, err := io.ReadFull(r, one); err != nil {
			return b.String(), err
		}
		b.WriteByte(one[0])
	}
	return b.String(), nil
}

// readReadyLine reads stderr's first line and returns the address in it.
func readReadyLine(t *testing.T, r io.Reader) string {
	t.Helper()
	line, err := readLine(r)
	m := readyRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("ready line: got %q, %v", line, err)
	}
	return m[1]
}

// TestBrokenStderr: stderr's reader goes away after the ready line. Before,
// the first connection's line raised SIGPIPE: exit 141, no summary, no saved
// session, the snapshot left behind, and --json got 0 bytes. Now the
// forwarder serves on; SIGTERM gives exit 0, the JSON, the saved session and
// no snapshot.
func TestBrokenStderr(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		t.Run("quiet="+strconv.FormatBool(quiet), func(t *testing.T) {
			dir := t.TempDir()
			up := startUpstream(t, echo)
			outR, outW := pipe(t)
			errR, errW := pipe(t)
			args := []string{"forward", "--json", "0", up.addr()}
			if quiet {
				args = append(args[:1], append([]string{"-q"}, args[1:]...)...)
			}
			cmd := startWarmportFiles(t, dir, outW, errW, args...)
			outW.Close()
			errW.Close()
			addr := readReadyLine(t, errR)
			errR.Close() // the reader is gone
			for _, msg := range []string{"one", "two", "three"} {
				echoOnce(t, addr, msg)
			}
			stdout := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(outR)
				stdout <- b
			}()
			cmd.Process.Signal(syscall.SIGTERM)
			if st := waitCmd(t, cmd); st != 0 {
				t.Fatalf("exit status: got %d; want 0", st)
			}
			var sum jsonSummary
			if b := <-stdout; json.Unmarshal(b, &sum) != nil || sum.Totals.Connections != 3 {
				t.Errorf("--json: got %q; want a summary of 3 connections", b)
			}
			out := statsJSON(t, dir)
			if len(out.Running) != 0 || len(out.Recent) != 1 || out.Recent[0].Totals.Connections != 3 {
				t.Errorf("state: running %d, recent %+v; want no snapshot and one saved session of 3 connections", len(out.Running), out.Recent)
			}
		})
	}
}

// TestJSONClosedStdout: --json to a stdout whose reader is gone reports the
// write error with exit 1, after saving the session. Before: killed by
// SIGPIPE, silently.
func TestJSONClosedStdout(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	outR, outW := pipe(t)
	outR.Close()
	errR, errW := pipe(t)
	cmd := startWarmportFiles(t, dir, outW, errW, "forward", "--json", "-q", "0", up.addr())
	outW.Close()
	errW.Close()
	br := bufio.NewReader(errR)
	line, err := br.ReadString('\n')
	m := readyRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("ready line: got %q, %v", line, err)
	}
	echoOnce(t, m[1], "x")
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(br)
	if st := waitCmd(t, cmd); st != 1 {
		t.Errorf("exit status: got %d; want 1 (the JSON could not be written)", st)
	}
	if ls := lines(string(rest)); len(ls) == 0 || !strings.HasPrefix(ls[len(ls)-1], "warmport: write the JSON summary: ") ||
		!strings.Contains(ls[len(ls)-1], "broken pipe") {
		t.Errorf("stderr: want a last line saying the JSON summary met a broken pipe\n%s", rest)
	}
	if o := statsJSON(t, dir); len(o.Recent) != 1 || len(o.Running) != 0 {
		t.Errorf("state: running %d, recent %d; want the session saved and the snapshot removed", len(o.Running), len(o.Recent))
	}
}

// TestStalledStderr: stderr is a pipe nobody reads while 5000 clients come
// and go, with --max-conns 4. Before, a pair's slot was freed only after its
// line was written: no client was served after about 869 connections, and
// --exit-idle could never fire. Now every client is served, --exit-idle
// fires (the session is saved while stderr is still stalled), and once
// stderr is read again every line is either there or counted as dropped.
func TestStalledStderr(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	up := startUpstream(t, echo)
	errR, errW := pipe(t)
	cmd := startWarmportFiles(t, dir, nil, errW, "forward", "--max-conns", "4", "--exit-idle", "2s", "0", up.addr())
	errW.Close()
	addr := readReadyLine(t, errR)
	for i := range n {
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		_, err = c.Write([]byte("ping"))
		buf := make([]byte, 4)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		c.Close()
		if err != nil || string(buf) != "ping" {
			t.Fatalf("client %d of %d with stderr stalled: got %q, %v; want ping", i+1, n, buf, err)
		}
	}
	sessions := filepath.Join(dir, "sessions")
	deadline := time.Now().Add(exitTimeout)
	for {
		if ents, _ := os.ReadDir(sessions); len(ents) > 0 {
			break // --exit-idle fired and the session is saved, stderr still unread
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session saved within %v of the last client: --exit-idle did not fire", exitTimeout)
		}
		time.Sleep(20 * time.Millisecond) // another process's file: nothing to wait on
	}
	rest, err := io.ReadAll(errR)
	if err != nil {
		t.Fatal(err)
	}
	if st := waitCmd(t, cmd); st != 0 {
		t.Errorf("exit status: got %d; want 0", st)
	}
	stderr := string(rest)
	shown := 0
	for _, l := range lines(stderr) {
		if strings.HasPrefix(l, "#") {
			shown++
		}
	}
	m := regexp.MustCompile(`\((\d+) lines dropped`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no \"lines dropped\" in the summary (%d lines shown)\nstderr tail:\n%s", shown, tail(stderr, 2000))
	}
	dropped, _ := strconv.Atoi(m[1])
	if shown+dropped != n || dropped == 0 {
		t.Errorf("lines: got %d shown + %d dropped; want %d in all, some dropped", shown, dropped, n)
	}
	if !strings.Contains(stderr, "total: 5000 connections (0 failed)") || !strings.Contains(stderr, "no connection for 2s, exiting") {
		t.Errorf("stderr: want the exit-idle line and a summary of 5000 connections\nstderr tail:\n%s", tail(stderr, 2000))
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// TestSIGHUP: a closed terminal (or a dropped ssh session) sends SIGHUP.
// Before, it ended warmport at once: no summary, no saved session, the
// snapshot left behind. Now it is a graceful stop like SIGTERM: accepting
// stops, the open connection is still relayed to its end, then the summary,
// the saved session, no snapshot, exit 0.
func TestSIGHUP(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	p, addr := statsStart(t, dir, "0", up.addr())
	c, err := dialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func(msg string) {
		t.Helper()
		buf := make([]byte, len(msg))
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: got %q, %v; want %q", buf, err, msg)
		}
	}
	exchange("before")
	p.signal(t, syscall.SIGHUP)
	waitDraining(t, addr)
	exchange("during the drain")
	c.Close()
	r := p.wait(t, exitTimeout)
	// waitDraining's probes may count as connections of 0 bytes.
	if r.status != 0 || !strings.Contains(r.stderr, "(0 failed), up 22 B, down 22 B") {
		t.Errorf("after SIGHUP: status %d; want 0 and the summary\nstderr:\n%s", r.status, r.stderr)
	}
	out := statsJSON(t, dir)
	if len(out.Running) != 0 || len(out.Recent) != 1 {
		t.Errorf("state: running %d, recent %d; want the snapshot removed and the session saved", len(out.Running), len(out.Recent))
	}
}

// TestChildSIGPIPE: warmport catches SIGPIPE for itself, but COMMAND gets
// the default disposition, even when warmport was started with SIGPIPE
// ignored (as some shells and daemons start their children): a COMMAND
// writing to a closed pipe ends as it would without warmport.
func TestChildSIGPIPE(t *testing.T) {
	up := startUpstream(t, echo)
	script := "trap '' PIPE; exec " + warmportBin + " forward -q 0 " + up.addr() + " -- grep SigIgn /proc/self/status"
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(baseEnv(), "WARMPORT_STATE_DIR="+t.TempDir())
	r := startProc(t, cmd).wait(t, exitTimeout)
	if r.status != 0 {
		t.Fatalf("%s: status %d; want 0\nstderr:\n%s", script, r.status, r.stderr)
	}
	out := r.stdout
	m := regexp.MustCompile(`SigIgn:\s*([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("COMMAND's output: got %q; want its SigIgn line", out)
	}
	mask, _ := strconv.ParseUint(m[1], 16, 64)
	if mask&(1<<(syscall.SIGPIPE-1)) != 0 {
		t.Errorf("COMMAND's ignored signals: got %#x; want SIGPIPE (bit %d) not ignored", mask, syscall.SIGPIPE-1)
	}
}
