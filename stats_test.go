package main

// End-to-end tests of `warmport stats` and the state directory, with real
// forwarder processes (the binary e2e_helpers_test.go's TestMain builds).

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statsPollTimeout bounds a wait for a snapshot (written at most about 1 s
// after a change) to show what the test did.
const statsPollTimeout = 20 * time.Second

// The contract's `stats --json`, decoded by the test's own types.
type statsOutput struct {
	Running []statsRunning `json:"running"`
	Recent  []statsRecent  `json:"recent"`
}

type statsRunning struct {
	PID     int       `json:"pid"`
	Local   string    `json:"local"`
	Remote  string    `json:"remote"`
	Started time.Time `json:"started"`
	Active  int       `json:"active"`
	Totals  struct {
		Connections uint64 `json:"connections"`
		BytesUp     int64  `json:"bytes_up"`
		BytesDown   int64  `json:"bytes_down"`
	} `json:"totals"`
	Pool *struct {
		Hits uint64 `json:"hits"`
	} `json:"pool"`
}

type statsRecent struct {
	jsonSummary
	ID          string           `json:"id"`
	Connections *json.RawMessage `json:"connections"` // must be absent
}

// statsStart starts `warmport forward` with state directory dir, and
// returns it with the address it listens on.
func statsStart(t *testing.T, dir string, args ...string) (*proc, string) {
	t.Helper()
	p := startWarmportEnv(t, []string{"NO_COLOR=1", "WARMPORT_STATE_DIR=" + dir}, append([]string{"forward"}, args...)...)
	return p, p.waitReady(t)
}

// statsRun runs `warmport stats ARGS` with state directory dir.
func statsRun(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return startWarmportEnv(t, []string{"NO_COLOR=1", "WARMPORT_STATE_DIR=" + dir}, append([]string{"stats"}, args...)...).wait(t, exitTimeout)
}

// statsJSON runs `warmport stats --json` and decodes its output.
func statsJSON(t *testing.T, dir string) statsOutput {
	t.Helper()
	r := statsRun(t, dir, "--json")
	if r.status != 0 {
		t.Fatalf("stats --json: status %d\nstderr:\n%s", r.status, r.stderr)
	}
	var out statsOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("decode stats --json: %v\n%s", err, r.stdout)
	}
	if out.Running == nil || out.Recent == nil {
		t.Fatalf("stats --json: running and recent must be arrays, even empty: %s", r.stdout)
	}
	for _, s := range out.Recent {
		if s.Connections != nil || s.ID == "" {
			t.Fatalf("stats --json: a recent session has connections or no id: %s", r.stdout)
		}
	}
	return out
}

// statsPoll polls `stats --json` until cond holds, and returns that output.
func statsPoll(t *testing.T, dir, what string, cond func(statsOutput) bool) statsOutput {
	t.Helper()
	deadline := time.Now().Add(statsPollTimeout)
	for {
		out := statsJSON(t, dir)
		if cond(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats --json never showed %s within %v; last: %+v", what, statsPollTimeout, out)
		}
		time.Sleep(100 * time.Millisecond) // a snapshot has no event to wait on
	}
}

func statsRunningByPID(out statsOutput, pid int) (statsRunning, bool) {
	for _, s := range out.Running {
		if s.PID == pid {
			return s, true
		}
	}
	return statsRunning{}, false
}

// TestStatsTwoForwarders: two forwarders at once, each with its own local
// address and live totals that match the bytes pushed through it, one of
// them on a connection still open.
func TestStatsTwoForwarders(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	p1, addr1 := statsStart(t, dir, "-q", "0", up.addr())
	p2, addr2 := statsStart(t, dir, "-q", "0", up.addr())

	echoOnce(t, addr1, strings.Repeat("a", 1000))
	c, err := dialClient(addr2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, strings.Repeat("b", 3000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}

	out := statsPoll(t, dir, "both forwarders with their bytes", func(out statsOutput) bool {
		s1, ok1 := statsRunningByPID(out, p1.cmd.Process.Pid)
		s2, ok2 := statsRunningByPID(out, p2.cmd.Process.Pid)
		return ok1 && ok2 && s1.Totals.BytesUp == 1000 && s1.Totals.BytesDown == 1000 &&
			s2.Totals.BytesUp == 3000 && s2.Totals.BytesDown == 3000 && s1.Active == 0 && s2.Active == 1
	})
	if len(out.Running) != 2 {
		t.Errorf("running: got %d forwarders; want 2: %+v", len(out.Running), out.Running)
	}
	for _, w := range []struct {
		pid   int
		local string
	}{{p1.cmd.Process.Pid, addr1}, {p2.cmd.Process.Pid, addr2}} {
		s, _ := statsRunningByPID(out, w.pid)
		if s.Local != w.local || s.Remote != up.addr() || s.Totals.Connections != 1 || s.Pool == nil ||
			s.Started.IsZero() || time.Since(s.Started) > time.Minute {
			t.Errorf("pid %d: got %+v; want %s -> %s, 1 connection, a start time and pool stats", w.pid, s, w.local, up.addr())
		}
	}
	// The human table lists both.
	r := statsRun(t, dir)
	for _, want := range []string{addr1 + " -> " + up.addr(), addr2 + " -> " + up.addr(), "running: 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stats: no %q in\n%s", want, r.stdout)
		}
	}
	c.Close()
	p1.stop(t)
	p2.stop(t)
	if out := statsJSON(t, dir); len(out.Running) != 0 || len(out.Recent) != 2 {
		t.Errorf("after both exited: got %d running, %d recent; want 0, 2", len(out.Running), len(out.Recent))
	}
}

// TestStatsKilledForwarder: SIGKILL leaves a snapshot behind; stats ignores
// it and removes it.
func TestStatsKilledForwarder(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	p, _ := statsStart(t, dir, "-q", "0", up.addr())
	pid := p.cmd.Process.Pid
	statsPoll(t, dir, "the forwarder", func(out statsOutput) bool {
		_, ok := statsRunningByPID(out, pid)
		return ok
	})
	p.signal(t, syscall.SIGKILL)
	p.wait(t, exitTimeout)
	snap := filepath.Join(dir, "running", strconv.Itoa(pid)+".json")
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("a SIGKILLed forwarder cannot remove its snapshot, yet: %v", err)
	}
	if out := statsJSON(t, dir); len(out.Running) != 0 {
		t.Errorf("running after SIGKILL: got %+v; want none", out.Running)
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Errorf("stale snapshot %s: got %v; want it removed", snap, err)
	}
}

// TestStatsSimultaneousExits: forwarders that end at the same moment all
// leave their session in the history.
func TestStatsSimultaneousExits(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	const n = 5
	procs := make([]*proc, n)
	addrs := make([]string, n)
	for i := range n {
		procs[i], addrs[i] = statsStart(t, dir, "-q", "0", up.addr())
		echoOnce(t, addrs[i], strings.Repeat("x", 100*(i+1)))
	}
	statsPoll(t, dir, "every forwarder", func(out statsOutput) bool { return len(out.Running) == n })
	for _, p := range procs {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range procs {
		if r := p.wait(t, exitTimeout); r.status != 0 {
			t.Errorf("status after SIGTERM: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
		}
	}
	out := statsJSON(t, dir)
	if len(out.Running) != 0 {
		t.Errorf("running after every forwarder exited: %+v", out.Running)
	}
	byLocal := map[string]statsRecent{}
	for _, s := range out.Recent {
		byLocal[s.Local] = s
	}
	for i, a := range addrs {
		s, ok := byLocal[a]
		if !ok {
			t.Errorf("session of %s: missing from recent (%d sessions)", a, len(out.Recent))
			continue
		}
		if want := int64(100 * (i + 1)); s.Totals.BytesUp != want || s.Totals.BytesDown != want || s.Remote != up.addr() {
			t.Errorf("session of %s: got %+v; want %d bytes each way to %s", a, s.jsonSummary, want, up.addr())
		}
	}
	for i := 1; i < len(out.Recent); i++ {
		if out.Recent[i].Ended.After(out.Recent[i-1].Ended) {
			t.Errorf("recent is not newest first: %v after %v", out.Recent[i].Ended, out.Recent[i-1].Ended)
		}
	}
}

// TestStatsSessionMatchesExitSummary: `stats ID` prints the block forward
// printed at exit, and `stats --json ID` the summary `forward --json` printed.
func TestStatsSessionMatchesExitSummary(t *testing.T) {
	dir := t.TempDir()
	up := startUpstream(t, echo)
	p, addr := statsStart(t, dir, "--json", "0", up.addr())
	echoOnce(t, addr, "hello")
	echoOnce(t, addr, strings.Repeat("y", 5000))
	r := p.stop(t)
	block := statsSummaryBlock(t, r.stderr)

	var id string
	for _, s := range statsJSON(t, dir).Recent {
		if s.Local == addr {
			id = s.ID
		}
	}
	if id == "" {
		t.Fatalf("no recent session of %s", addr)
	}
	got := statsRun(t, dir, id)
	if got.status != 0 || got.stdout != block {
		t.Errorf("stats %s: status %d, stdout:\n%s\nwant status 0 and what forward printed at exit:\n%s\nstderr:\n%s",
			id, got.status, got.stdout, block, got.stderr)
	}

	gotJSON := statsRun(t, dir, "--json", id)
	if gotJSON.status != 0 {
		t.Fatalf("stats --json %s: status %d\n%s", id, gotJSON.status, gotJSON.stderr)
	}
	var full struct {
		jsonSummary
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(gotJSON.stdout), &full); err != nil {
		t.Fatalf("decode stats --json %s: %v\n%s", id, err, gotJSON.stdout)
	}
	want := parseSummary(t, r.stdout)
	gotB, _ := json.Marshal(full.jsonSummary)
	wantB, _ := json.Marshal(want)
	if full.ID != id || !bytes.Equal(gotB, wantB) || len(want.Connections) != 2 {
		t.Errorf("stats --json %s:\n got %s (id %q)\nwant %s (2 connections)", id, gotB, full.ID, wantB)
	}
}

// statsSummaryBlock cuts renderSummary's block out of forward's stderr:
// from the "warmport session" line to the "total:" line.
func statsSummaryBlock(t *testing.T, stderr string) string {
	t.Helper()
	i := strings.Index(stderr, "warmport session ")
	if i < 0 {
		t.Fatalf("no summary in stderr:\n%s", stderr)
	}
	rest := stderr[i:]
	j := strings.Index(rest, "\ntotal: ")
	if j < 0 {
		t.Fatalf("no total line in stderr:\n%s", stderr)
	}
	k := strings.IndexByte(rest[j+1:], '\n')
	if k < 0 {
		t.Fatalf("unterminated total line in stderr:\n%s", stderr)
	}
	return rest[:j+1+k+1]
}

// TestStatsUnwritableStateDir: a state directory under a regular file
// (which stops root as well, unlike chmod) costs one warning line, not the
// forwarding.
func TestStatsUnwritableStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "state")
	good := t.TempDir()
	up := startUpstream(t, echo)
	// --state-dir wins over WARMPORT_STATE_DIR.
	p, addr := statsStart(t, good, "-q", "--state-dir", bad, "0", up.addr())
	echoOnce(t, addr, "before")
	time.Sleep(1500 * time.Millisecond) // let the publisher fail more than once
	echoOnce(t, addr, "after")
	r := p.stop(t)
	var warnings []string
	for _, l := range lines(r.stderr) {
		if strings.Contains(l, "warning") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "warmport: warning: ") || !strings.Contains(warnings[0], bad) {
		t.Errorf("warnings: got %q; want one line \"warmport: warning: ...\" naming %s\nstderr:\n%s", warnings, bad, r.stderr)
	}
	if !strings.Contains(r.stderr, "total: 2 connections (0 failed)") {
		t.Errorf("summary: want 2 connections\nstderr:\n%s", r.stderr)
	}
	if out := statsJSON(t, good); len(out.Running)+len(out.Recent) != 0 {
		t.Errorf("WARMPORT_STATE_DIR was used despite --state-dir: %+v", out)
	}
}

// TestStatsNothingFound: stats says where it looked and why it found
// nothing: a missing directory, an empty one, a file, an unknown ID.
func TestStatsNothingFound(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	r := statsRun(t, missing)
	if r.status != 0 || !strings.Contains(r.stdout, missing) || !strings.Contains(r.stdout, "does not exist") {
		t.Errorf("stats on a missing dir: status %d, stdout %q; want 0 and %s \"does not exist\"", r.status, r.stdout, missing)
	}
	if out := statsJSON(t, missing); len(out.Running)+len(out.Recent) != 0 {
		t.Errorf("stats --json on a missing dir: %+v", out)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("stats created %s: %v", missing, err)
	}

	empty := t.TempDir()
	r = statsRun(t, empty)
	if r.status != 0 || !strings.Contains(r.stdout, filepath.Join(empty, "running")) || !strings.Contains(r.stdout, "running: none") {
		t.Errorf("stats on an empty dir: status %d, stdout %q; want 0, \"running: none\" and where it looked", r.status, r.stdout)
	}

	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct {
		name, dir string
		args      []string
		want      string
	}{
		{"a file", file, nil, file},
		{"unknown ID in a missing dir", missing, []string{"20251125-093100-4f2a9c"}, filepath.Join(missing, "sessions")},
		{"unknown ID", empty, []string{"nope"}, filepath.Join(empty, "sessions")},
	} {
		r := statsRun(t, c.dir, c.args...)
		if ls := lines(r.stderr); r.status != 1 || len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") || !strings.Contains(ls[0], c.want) {
			t.Errorf("%s: status %d, stderr %q; want 1 and one line naming %s", c.name, r.status, r.stderr, c.want)
		}
	}
}

// TestStatsWatch: --watch redraws every second until SIGINT, then exits 0.
func TestStatsWatch(t *testing.T) {
	dir := t.TempDir()
	p := startWarmportEnv(t, []string{"NO_COLOR=1", "WARMPORT_STATE_DIR=" + dir}, "stats", "--watch")
	deadline := time.Now().Add(statsPollTimeout)
	for strings.Count(p.Stdout(), "warmport stats,") < 2 {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("no second frame within %v\nstdout:\n%s", statsPollTimeout, p.Stdout())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.signal(t, syscall.SIGINT)
	if r := p.wait(t, exitTimeout); r.status != 0 || strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("stats --watch after SIGINT: status %d; want 0 and no escape codes on a pipe\nstdout:\n%s\nstderr:\n%s",
			r.status, r.stdout, r.stderr)
	}
}
