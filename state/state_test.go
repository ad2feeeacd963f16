package state

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// testTimeout bounds every wait in this package's tests.
const testTimeout = 20 * time.Second

func TestResolveStateDir(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name              string
		flag, env, xdg, h string
		want              string
		wantErr           bool
	}{
		{name: "flag first", flag: "/f", env: "/e", xdg: "/x", h: home, want: "/f"},
		{name: "relative flag made absolute", flag: "rel", h: home, want: "rel"},
		{name: "WARMPORT_STATE_DIR", env: "/e", xdg: "/x", h: home, want: "/e"},
		{name: "XDG_STATE_HOME", xdg: "/x", h: home, want: "/x/warmport"},
		{name: "relative XDG_STATE_HOME ignored", xdg: "x", h: home, want: filepath.Join(home, ".local/state/warmport")},
		{name: "home", h: home, want: filepath.Join(home, ".local/state/warmport")},
		{name: "no home", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WARMPORT_STATE_DIR", tt.env)
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", tt.h)
			got, err := Resolve(tt.flag)
			if tt.wantErr {
				if err == nil || runtime.GOOS == "windows" {
					t.Skipf("got %q, %v; an error only where HOME is the home directory", got, err)
				}
				return
			}
			want, _ := filepath.Abs(tt.want)
			if err != nil || got != want {
				t.Errorf("Resolve(%q): got %q, %v; want %q, <nil>", tt.flag, got, err, want)
			}
		})
	}
}

func TestStatePermissions(t *testing.T) {
	d := testDir(t, filepath.Join(t.TempDir(), "a", "state"))
	if err := d.writeSnapshot(Snapshot{PID: os.Getpid(), Local: "127.0.0.1:1", Remote: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	id, err := d.SaveSession(stateTestSummary(0, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{
		{d.Path(), 0o700},
		{d.RunningPath(), 0o700},
		{d.SessionsPath(), 0o700},
		{filepath.Join(d.RunningPath(), strconv.Itoa(os.Getpid())+".json"), 0o600},
		{filepath.Join(d.SessionsPath(), id+".json"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.mode {
			t.Errorf("mode of %s: got %v; want %v", c.path, got, c.mode)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	d := testDir(t, t.TempDir())
	start, _, _ := procStat(os.Getpid())
	want := Snapshot{PID: os.Getpid(), Local: "127.0.0.1:8080", Remote: "db:5432",
		Started: time.Now().Add(-time.Minute).Round(0), Active: 3,
		Totals: session.Totals{Connections: 7, Failed: 1, BytesUp: 123, BytesDown: 4567},
		Pool:   pool.Stats{Hits: 5, Misses: 2, Dials: 8, Idle: 2}, Host: hostname(), ProcStart: start}
	for range 2 { // the second write replaces the first
		if err := d.writeSnapshot(want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Running()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Started.Equal(want.Started) {
		t.Fatalf("Running: got %+v; want [%+v]", got, want)
	}
	got[0].Started = want.Started
	if got[0] != want {
		t.Errorf("Running: got %+v; want %+v", got[0], want)
	}
	stateNoTemps(t, d.RunningPath())
}

func TestStaleSnapshots(t *testing.T) {
	d := testDir(t, t.TempDir())
	if err := os.MkdirAll(d.RunningPath(), 0o700); err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	selfStart, _, procOK := procStat(self)
	dead, dead2 := stateDeadPID(t), stateDeadPID(t)
	live := stateLiveChild(t)
	name := func(pid int) string { return strconv.Itoa(pid) + ".json" }
	type snap struct {
		name   string // file name in running/
		s      *Snapshot
		kept   bool // the file stays
		listed bool // Running returns it
	}
	snaps := []snap{
		{name: name(self), s: &Snapshot{PID: self, Local: "live", ProcStart: selfStart}, kept: true, listed: true},
		{name: name(dead), s: &Snapshot{PID: dead, Local: "dead"}},
		{name: name(dead2)}, // unparsable: its name tells the pid
		// A shared home directory: only the other host can tell.
		{name: name(4000000), s: &Snapshot{PID: 4000000, Local: "other", Host: hostname() + "-not"}, kept: true},
		// Not a name warmport makes: not read, not removed.
		{name: "live.json", s: &Snapshot{PID: self, Local: "badname", ProcStart: selfStart}, kept: true},
		// The name and the pid inside disagree.
		{name: name(live), s: &Snapshot{PID: self, Local: "disagree", ProcStart: selfStart}},
	}
	if procOK {
		start1, _, _ := procStat(1)
		snaps = append(snaps,
			snap{name: name(1), s: &Snapshot{PID: 1, Local: "reused", ProcStart: start1 + 1}},
			// A dead process not reaped yet still answers kill(pid, 0).
			snap{name: name(stateZombie(t)), s: &Snapshot{Local: "zombie"}})
		snaps[len(snaps)-1].s.PID, _ = snapshotPID(snaps[len(snaps)-1].name)
	}
	for _, sn := range snaps {
		data := []byte("{not json")
		if sn.s != nil {
			data, _ = json.Marshal(sn.s)
		}
		if err := os.WriteFile(filepath.Join(d.RunningPath(), sn.name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Running()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, s := range got {
		listed[s.Local] = true
	}
	for _, sn := range snaps {
		if _, err := os.Stat(filepath.Join(d.RunningPath(), sn.name)); (err == nil) != sn.kept {
			t.Errorf("%s: file kept: got %v; want %v", sn.name, err == nil, sn.kept)
		}
		if sn.s != nil && listed[sn.s.Local] != sn.listed {
			t.Errorf("%s (%s): listed: got %v; want %v", sn.name, sn.s.Local, listed[sn.s.Local], sn.listed)
		}
	}
}

// stateLiveChild returns the pid of a process that runs until the test ends.
func stateLiveChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// stateDeadPID returns the pid of a process that has exited and been reaped.
func stateDeadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run %s: %v", os.Args[0], err)
	}
	return cmd.Process.Pid
}

// stateZombie returns the pid of a killed child not yet reaped (reaped when
// the test ends).
func stateZombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	t.Cleanup(func() { cmd.Wait() })
	pid := cmd.Process.Pid
	deadline := time.Now().Add(testTimeout)
	for {
		if _, state, ok := procStat(pid); ok && state == 'Z' {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHistoryBounded(t *testing.T) {
	d := testDir(t, t.TempDir())
	base := time.Date(2025, 11, 25, 9, 0, 0, 0, time.UTC)
	const n = HistoryMax + 5
	for i := range n {
		if _, err := d.SaveSession(stateTestSummary(i, base.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	names, err := testSessionNames(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != HistoryMax {
		t.Fatalf("sessions kept: got %d; want %d", len(names), HistoryMax)
	}
	recent, err := d.Recent()
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != HistoryMax {
		t.Fatalf("Recent: got %d; want %d", len(recent), HistoryMax)
	}
	// Newest first; the oldest five went.
	for i, s := range recent {
		if want := stateTestLocal(n - 1 - i); s.Local != want {
			t.Fatalf("Recent()[%d].Local: got %s; want %s", i, s.Local, want)
		}
	}
	stateNoTemps(t, d.SessionsPath())
}

// TestConcurrentSaves ends 20 sessions at the same moment, in one second,
// while the history is nearly full, so that they also prune concurrently.
func TestConcurrentSaves(t *testing.T) {
	d := testDir(t, t.TempDir())
	base := time.Date(2025, 11, 25, 9, 0, 0, 0, time.UTC)
	const old, fresh = HistoryMax - 10, 20
	for i := range old {
		if _, err := d.SaveSession(stateTestSummary(i, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	ended := base.Add(time.Hour)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for i := range fresh {
		wg.Go(func() {
			<-start
			if _, err := d.SaveSession(stateTestSummary(1000+i, ended)); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	names, err := testSessionNames(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != HistoryMax {
		t.Errorf("sessions kept: got %d; want %d", len(names), HistoryMax)
	}
	seen := map[string]bool{}
	for _, n := range names {
		s, err := d.Session(strings.TrimSuffix(n, ".json"))
		if err != nil {
			t.Fatalf("session %s: %v", n, err)
		}
		if len(s.Connections) != 1 || s.Connections[0].BytesUp != 10 {
			t.Errorf("session %s: connections %+v", n, s.Connections)
		}
		seen[s.Local] = true
	}
	for i := range fresh {
		if !seen[stateTestLocal(1000+i)] {
			t.Errorf("session %s saved at the same moment: lost", stateTestLocal(1000+i))
		}
	}
	stateNoTemps(t, d.SessionsPath())
}

func TestSessionLookup(t *testing.T) {
	d := testDir(t, t.TempDir())
	if _, err := d.Session("20251125"); !errors.Is(err, ErrNoSession) || !strings.Contains(err.Error(), d.SessionsPath()) {
		t.Errorf("Session in a missing directory: got %v; want ErrNoSession naming %s", err, d.SessionsPath())
	}
	sum := stateTestSummary(1, time.Date(2025, 11, 25, 9, 31, 0, 0, time.UTC))
	sum.Connections = make([]session.Record, session.DefaultMaxRecords) // a long one: Recent must still read its head
	id1, err := d.SaveSession(sum)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := d.SaveSession(stateTestSummary(2, time.Date(2025, 11, 25, 9, 32, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		want string // Local, or "" for ErrNoSession
	}{
		{id1, stateTestLocal(1)},
		{id2[:len(id2)-2], stateTestLocal(2)},
		{"20251125-09", ""}, // the start of both
		{"nope", ""},
		{"../" + id1, ""},
		{"", ""},
	} {
		s, err := d.Session(c.id)
		switch {
		case c.want == "" && !errors.Is(err, ErrNoSession):
			t.Errorf("Session(%q): got %v; want ErrNoSession", c.id, err)
		case c.want != "" && (err != nil || s.Local != c.want):
			t.Errorf("Session(%q): got %v; want %s", c.id, err, c.want)
		}
	}
	s, err := d.Session(id1)
	if err != nil || len(s.Connections) != session.DefaultMaxRecords || s.ID != id1 || s.PID != os.Getpid() {
		t.Fatalf("Session(%s): got %d connections, id %q, pid %d, %v", id1, len(s.Connections), s.ID, s.PID, err)
	}
	recent, err := d.Recent()
	if err != nil || len(recent) != 2 || recent[0].ID != id2 || recent[1].ID != id1 ||
		recent[1].Totals != sum.Totals || !recent[1].Ended.Equal(sum.Ended) {
		t.Errorf("Recent: got %+v, %v; want %s then %s", recent, err, id2, id1)
	}
}

// TestSessionKeepsVia: the SSH server a session went through is kept, in
// the list of recent sessions and in the session's summary; "" without.
func TestSessionKeepsVia(t *testing.T) {
	ended := time.Date(2025, 11, 25, 9, 31, 0, 0, time.UTC)
	for _, via := range []string{"deploy@10.0.0.5:22", ""} {
		t.Run(via, func(t *testing.T) {
			d := testDir(t, t.TempDir())
			sum := stateTestSummary(1, ended)
			sum.Via = via
			id, err := d.SaveSession(sum)
			if err != nil {
				t.Fatal(err)
			}
			recent, err := d.Recent()
			if err != nil || len(recent) != 1 || recent[0].ID != id {
				t.Fatalf("Recent: got %+v, %v; want %s alone", recent, err, id)
			}
			if got := recent[0].Via; got != via {
				t.Errorf("Recent via: got %q; want %q", got, via)
			}
			s, err := d.Session(id)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Summary().Via; got != via {
				t.Errorf("Summary via: got %q; want %q", got, via)
			}
		})
	}
}

// TestPublisher: the snapshot follows what the snapshot function says,
// with this process's pid, and Close removes it.
func TestPublisher(t *testing.T) {
	d := testDir(t, filepath.Join(t.TempDir(), "state"))
	var conns atomic.Uint64
	snap := func() Snapshot {
		return Snapshot{PID: -1, Local: "127.0.0.1:1", Remote: "127.0.0.1:2", Totals: session.Totals{Connections: conns.Load()}}
	}
	p := publishEvery(d, snap, 10*time.Millisecond, func(err error) { t.Errorf("publish: %v", err) })
	conns.Store(7)
	var got []Snapshot
	eventually(t, "a snapshot with 7 connections", func() bool {
		var err error
		got, err = d.Running()
		return err == nil && len(got) == 1 && got[0].Totals.Connections == 7
	})
	if s := got[0]; s.PID != os.Getpid() || s.Local != "127.0.0.1:1" || s.Remote != "127.0.0.1:2" || s.Host != hostname() {
		t.Errorf("snapshot: got %+v; want pid %d, 127.0.0.1:1 -> 127.0.0.1:2, host %s", s, os.Getpid(), hostname())
	}
	p.Close()
	path := filepath.Join(d.RunningPath(), strconv.Itoa(os.Getpid())+".json")
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("snapshot after Close: got %v; want it removed", err)
	}
	stateNoTemps(t, d.RunningPath())
}

// TestPublishAll: the forwards of one `up` share its file and come back
// from Running in the order given, each with its name; Close removes them.
func TestPublishAll(t *testing.T) {
	d := testDir(t, filepath.Join(t.TempDir(), "state"))
	started := time.Now()
	snap := func() []Snapshot {
		return []Snapshot{{Name: "db", Local: "127.0.0.1:1", Started: started}, {Name: "cache", Local: "127.0.0.1:2", Started: started}}
	}
	p := publishAllEvery(d, snap, 10*time.Millisecond, func(err error) { t.Errorf("publish: %v", err) })
	var got []Snapshot
	eventually(t, "two snapshots", func() bool {
		var err error
		got, err = d.Running()
		return err == nil && len(got) == 2
	})
	for i, want := range []string{"db", "cache"} {
		if got[i].Name != want || got[i].PID != os.Getpid() {
			t.Errorf("snapshot %d: got name %q pid %d; want %q pid %d", i, got[i].Name, got[i].PID, want, os.Getpid())
		}
	}
	p.Close()
	if got, err := d.Running(); err != nil || len(got) != 0 {
		t.Errorf("after Close: got %v, %v; want none", got, err)
	}
}

// TestPublisherUnwritable: a running/ that is a regular file makes every
// write fail (root ignores permission bits, not that); the publisher
// reports it and keeps going, and Close still returns.
func TestPublisherUnwritable(t *testing.T) {
	d := testDir(t, t.TempDir())
	if err := os.WriteFile(d.RunningPath(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var errs atomic.Int64
	p := publishEvery(d, func() Snapshot { return Snapshot{} }, 10*time.Millisecond, func(error) { errs.Add(1) })
	eventually(t, "two failed writes", func() bool { return errs.Load() >= 2 })
	p.Close()
}

// testDir creates and opens the state directory path, closed when the test ends.
func testDir(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func testSessionNames(d *Dir) ([]string, error) {
	dir, err := d.sub(sessionsDir, false)
	if err != nil || dir == nil {
		return nil, err
	}
	defer dir.close()
	return sessionNames(dir)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, testTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stateTestLocal(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+i)) }

func stateTestSummary(i int, ended time.Time) *session.Summary {
	return &session.Summary{Local: stateTestLocal(i), Remote: "127.0.0.1:5432", Started: ended.Add(-time.Minute), Ended: ended,
		Connections: []session.Record{{ID: 1, Client: "127.0.0.1:40000", Source: "warm", BytesUp: 10, BytesDown: 20, ClosedBy: session.ClosedByClient}},
		Totals:      session.Totals{Connections: 1, BytesUp: 10, BytesDown: 20}, Pool: pool.Stats{Hits: 1, Dials: 2}}
}

// stateNoTemps fails if a temporary file was left in dir.
func stateNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file left: %s", filepath.Join(dir, e.Name()))
		}
	}
}
