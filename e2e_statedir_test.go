//go:build linux

package main

// End-to-end tests of a state directory someone tried to turn against its
// user (issue 18's findings 1 and 2): links, a foreign owner, loose modes,
// FIFOs, devices, huge files, planted pids and escape codes.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// statsMaxRSS bounds the peak memory of a `stats` run on hostile files:
// a normal run needs about 10 MiB; reading one 100 MB file took 889 MB.
const statsMaxRSS = 64 << 20

// victimDir makes a directory of files that warmport must leave alone, and
// returns it with a function that fails the test if any of them changed.
func victimDir(t *testing.T, names []string) (dir string, check func()) {
	t.Helper()
	dir = t.TempDir()
	old := time.Now().Add(-2 * time.Hour) // stale to a cleaner of temporary files
	for i, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(fmt.Sprintf(`{"victim":%d}`, i)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir, func() {
		t.Helper()
		for i, n := range names {
			data, err := os.ReadFile(filepath.Join(dir, n))
			if want := fmt.Sprintf(`{"victim":%d}`, i); err != nil || string(data) != want {
				t.Errorf("%s behind the link: got %q, %v; want %q untouched", n, data, err, want)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != len(names) {
			t.Errorf("files behind the link: got %d; want %d", len(ents), len(names))
		}
	}
}

// TestStateDirLinks: sessions/ or running/ a symbolic link to someone's
// files. Before, one forwarder's exit pruned 50 of 150 files behind a
// linked sessions/, and stats deleted files through a linked running/.
// Now the link is refused: the forwarder warns once and forwards on, stats
// exits 1 with one line, and every file behind the link is untouched.
func TestStateDirLinks(t *testing.T) {
	var sessions []string
	for i := range 150 {
		sessions = append(sessions, fmt.Sprintf("20250101-%06d-abcdef.json", i))
	}
	for _, c := range []struct {
		sub   string
		names []string
	}{
		{"sessions", sessions},
		{"running", []string{"99999.json", "4000000.json", ".tmp-keep", ".tmp-0123456789abcdef"}},
	} {
		t.Run(c.sub, func(t *testing.T) {
			dir := t.TempDir()
			victim, check := victimDir(t, c.names)
			link := filepath.Join(dir, c.sub)
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			up := startUpstream(t, echo)
			p, addr := statsStart(t, dir, "-q", "0", up.addr())
			echoOnce(t, addr, "through")
			r := p.stop(t)
			checkOneWarning(t, r.stderr, link, "symbolic link")
			if !strings.Contains(r.stderr, "total: 1 connection (0 failed)") {
				t.Errorf("summary: want 1 connection served\nstderr:\n%s", r.stderr)
			}
			s := statsRun(t, dir)
			checkOneError(t, s, link, "symbolic link")
			check()
		})
	}
}

// TestStateDirRefused: a state directory owned by another user, or
// writable by others, is refused with one line that names the fix (as
// OpenSSH's StrictModes does); the forwarder forwards on and writes
// nothing there. Before, both were used without a word.
func TestStateDirRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"owned by nobody", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("chown to another user needs root")
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
		{"mode 0777", func(t *testing.T, dir string) {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "chmod 700 "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			c.setup(t, dir)
			up := startUpstream(t, echo)
			p, addr := statsStart(t, dir, "-q", "0", up.addr())
			echoOnce(t, addr, "through")
			r := p.stop(t)
			checkOneWarning(t, r.stderr, dir, c.want)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("refused state directory: got %d entries written; want none", len(ents))
			}
			checkOneError(t, statsRun(t, dir), dir, c.want)
		})
	}
}

// checkOneWarning fails unless stderr has exactly one warning line, and it
// names path and says want.
func checkOneWarning(t *testing.T, stderr, path, want string) {
	t.Helper()
	var warnings []string
	for _, l := range lines(stderr) {
		if strings.Contains(l, "warning") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "warmport: warning: ") ||
		!strings.Contains(warnings[0], path) || !strings.Contains(warnings[0], want) {
		t.Errorf("warnings: got %q; want one line naming %s and saying %q\nstderr:\n%s", warnings, path, want, stderr)
	}
}

// checkOneError fails unless r is exit status 1 with one line on stderr
// that names path and says want.
func checkOneError(t *testing.T, r result, path, want string) {
	t.Helper()
	ls := lines(r.stderr)
	if r.status != 1 || len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") ||
		!strings.Contains(ls[0], path) || !strings.Contains(ls[0], want) {
		t.Errorf("stats: status %d, stderr %q; want 1 and one line naming %s and saying %q", r.status, r.stderr, path, want)
	}
}

// TestStatsHostileFiles: what stats finds in its directory cannot hang it,
// exhaust its memory, fake a running forwarder or drive the terminal.
// Before: a FIFO blocked open(2) forever (SIGTERM did not help), a link to
// /dev/zero was read until the runtime ran out of memory, two 100 MB files
// took 8.2 s and 889 MB, {"pid":1} was listed as running, and escape codes
// were printed raw.
func TestStatsHostileFiles(t *testing.T) {
	dir := t.TempDir()
	running, sessions := filepath.Join(dir, "running"), filepath.Join(dir, "sessions")
	for _, d := range []string{running, sessions} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(syscall.Mkfifo(filepath.Join(running, "4242.json"), 0o600))
	must(syscall.Mkfifo(filepath.Join(sessions, "20251125-093100-aaaaaa.json"), 0o600))
	must(os.Symlink("/dev/zero", filepath.Join(running, "2.json")))
	if os.Geteuid() == 0 { // /dev/zero itself, with no link to refuse
		must(syscall.Mknod(filepath.Join(running, "3.json"), syscall.S_IFCHR|0o600, 1<<8|5))
	}
	for _, p := range []string{filepath.Join(running, "5.json"), filepath.Join(sessions, "20251125-093101-bbbbbb.json")} {
		f, err := os.Create(p)
		must(err)
		must(f.Truncate(100 << 20))
		f.Close()
	}
	must(os.WriteFile(filepath.Join(running, "1.json"), []byte(`{"pid":1,"local":"planted"}`), 0o600))
	const evilID = "20251125-093102-cccccc"
	evil := map[string]any{"pid": 1, "local": "\x1b]0;pwned\x07\x1b[31mevil", "remote": "db\u202e:5432",
		"started": time.Now(), "ended": time.Now(), "pool": map[string]any{},
		"connections": []map[string]any{{"id": 1, "client": "\x9b2J", "closed_by": "error", "error": "\x1b[2Jgone"}}}
	data, _ := json.Marshal(evil)
	must(os.WriteFile(filepath.Join(sessions, evilID+".json"), data, 0o600))

	for _, args := range [][]string{nil, {"--json"}, {evilID}} {
		t.Run(strings.Join(append([]string{"stats"}, args...), " "), func(t *testing.T) {
			r, rss := statsRunRSS(t, dir, args...)
			if r.status != 0 {
				t.Fatalf("status %d; want 0\nstderr:\n%s", r.status, r.stderr)
			}
			if rss > statsMaxRSS {
				t.Errorf("peak RSS: got %d MiB; want at most %d MiB", rss>>20, statsMaxRSS>>20)
			}
			if args == nil || args[0] == evilID {
				if i := strings.IndexFunc(r.stdout, isRawControl); i >= 0 {
					t.Errorf("a raw control character %q at %d of stdout:\n%q", r.stdout[i], i, r.stdout)
				}
				if !strings.Contains(r.stdout, `\x1b]0;pwned\x07`) {
					t.Errorf("stdout: want the escape codes shown escaped:\n%s", r.stdout)
				}
				if strings.Contains(r.stdout, "planted") {
					t.Errorf("stdout: the planted pid 1 is listed as running:\n%s", r.stdout)
				}
			}
			if args != nil && args[0] == "--json" {
				var out statsOutput
				if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
					t.Fatalf("decode: %v\n%s", err, r.stdout)
				}
				if len(out.Running) != 0 || len(out.Recent) != 1 {
					t.Errorf("running %+v, recent %d; want none running (pid 1 was planted) and the one real session", out.Running, len(out.Recent))
				}
			}
		})
	}

	// --watch redraws over the same files and stops at SIGTERM at once.
	p := startWarmportEnv(t, []string{"NO_COLOR=1", "WARMPORT_STATE_DIR=" + dir}, "stats", "--watch")
	deadline := time.Now().Add(statsPollTimeout)
	for strings.Count(p.Stdout(), "warmport stats,") < 2 {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("no second frame within %v\nstdout:\n%s\nstderr:\n%s", statsPollTimeout, p.Stdout(), p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.signal(t, syscall.SIGTERM)
	if r := p.wait(t, exitTimeout); r.status != 0 {
		t.Errorf("stats --watch after SIGTERM: status %d; want 0\nstderr:\n%s", r.status, r.stderr)
	}
	for _, n := range []string{"4242.json", "2.json", "5.json"} {
		if _, err := os.Lstat(filepath.Join(running, n)); err != nil {
			t.Errorf("running/%s: got %v; want it left alone (not a file warmport wrote)", n, err)
		}
	}
}

// isRawControl reports a C0 control other than newline, DEL or a C1 control.
func isRawControl(r rune) bool {
	return r < 0x20 && r != '\n' || r == 0x7f || 0x80 <= r && r < 0xa0
}

// statsRunRSS runs `warmport stats ARGS` on dir and returns how it ended and
// its peak resident memory in bytes. GNU time measures it: it forks before
// exec, where Go's os/exec shares the test's memory until exec, and the
// kernel would count the test binary's size as the child's peak.
func statsRunRSS(t *testing.T, dir string, args ...string) (result, int64) {
	t.Helper()
	const timeBin = "/usr/bin/time"
	if _, err := os.Stat(timeBin); err != nil {
		t.Fatalf("%s is missing: install the Debian package time (%v)", timeBin, err)
	}
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command(timeBin, append([]string{"-o", rssFile, "-f", "%M", warmportBin, "stats"}, args...)...)
	cmd.Env = append(baseEnv(), "NO_COLOR=1", "WARMPORT_STATE_DIR="+dir)
	r := startProc(t, cmd).wait(t, exitTimeout)
	data, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatal(err)
	}
	// GNU time adds a line of its own when the command failed.
	ls := lines(string(data))
	kib, err := strconv.ParseInt(strings.TrimSpace(ls[len(ls)-1]), 10, 64)
	if err != nil {
		t.Fatalf("%s's output: %q: %v", timeBin, data, err)
	}
	return r, kib << 10
}

// TestStatsStalledStdout: `stats --watch --json` into a pipe nobody reads
// blocks in write(2) once the pipe is full; SIGTERM must still end it at
// once, with status 0 as Ctrl-C ends --watch.
func TestStatsStalledStdout(t *testing.T) {
	dir := t.TempDir()
	sessions := filepath.Join(dir, "sessions")
	if err := os.Mkdir(sessions, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 150 { // about 48 KiB of JSON a frame
		data, _ := json.Marshal(map[string]any{"pid": i, "local": "127.0.0.1:1", "remote": "127.0.0.1:2", "pool": map[string]any{}})
		if err := os.WriteFile(filepath.Join(sessions, fmt.Sprintf("20250101-%06d-abcdef.json", i)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outR, outW := pipe(t)
	cmd := startWarmportFiles(t, dir, outW, nil, "stats", "--watch", "--json")
	outW.Close()
	frame, err := readLine(outR)
	if err != nil {
		t.Fatalf("first frame: %v", err)
	}
	deadline := time.Now().Add(statsPollTimeout)
	for {
		n, err := unix.IoctlGetInt(int(outR.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil {
			t.Fatal(err)
		}
		if n > len(frame) {
			// A third frame began, and two do not fit in the 64 KiB pipe:
			// the writer is blocked in it.
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout pipe holds %d bytes after %v; want more than a frame (%d)", n, statsPollTimeout, len(frame))
		}
		time.Sleep(20 * time.Millisecond) // frames come once a second: nothing to wait on
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if st := waitCmd(t, cmd); st != 0 {
		t.Errorf("stats --watch blocked on stdout, after SIGTERM: status %d; want 0", st)
	}
}
