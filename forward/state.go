package forward

// The state directory is where every running forwarder publishes a live
// snapshot and every finished session leaves its summary, for `warmport stats`:
//
//	DIR/running/PID.json   one per running forwarder, rewritten when it changes (at most about 1 s behind)
//	DIR/sessions/ID.json   one per finished session; the newest HistoryMax are kept
//
// Directories are 0700 and files 0600: who connected where is nobody else's
// business. Every file is written under a temporary name (".tmp-*") in its own
// directory and then renamed or linked into place, so a reader sees a whole
// file or none, and two writers never share a name.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warmport/warmport/pool"
)

const (
	// HistoryMax is how many finished sessions the state directory keeps.
	HistoryMax = 100
	// PublishInterval is how often a Publisher looks for changes to write.
	PublishInterval = time.Second

	runningDir  = "running"
	sessionsDir = "sessions"
	tmpPrefix   = ".tmp-"
	// A temporary file older than this was left by a writer that died.
	staleTempAge = time.Hour
)

// ErrNoSession is what StateDir.Session returns when no session has that ID.
var ErrNoSession = errors.New("forward: no such session")

// StateDir is a state directory, as ResolveStateDir finds it.
type StateDir string

// ResolveStateDir picks the state directory: dir when not empty (the
// --state-dir flag), else $WARMPORT_STATE_DIR, else $XDG_STATE_HOME/warmport,
// else ~/.local/state/warmport. A relative XDG_STATE_HOME is ignored, as the
// XDG Base Directory spec says. The result is absolute when it can be, so
// messages say exactly where warmport looked. Nothing is created.
func ResolveStateDir(dir string) (StateDir, error) {
	if dir == "" {
		dir = os.Getenv("WARMPORT_STATE_DIR")
	}
	if dir == "" {
		if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
			dir = filepath.Join(x, "warmport")
		}
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the state directory: %w; set --state-dir or WARMPORT_STATE_DIR", err)
		}
		dir = filepath.Join(home, ".local", "state", "warmport")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return StateDir(dir), nil
}

// RunningDir is where live snapshots are; SessionsDir where finished sessions are.
func (d StateDir) RunningDir() string  { return filepath.Join(string(d), runningDir) }
func (d StateDir) SessionsDir() string { return filepath.Join(string(d), sessionsDir) }

// mkdir creates sub (and d) with mode 0700 and returns its path.
func (d StateDir) mkdir(sub string) (string, error) {
	p := filepath.Join(string(d), sub)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", err
	}
	return p, nil
}

// Snapshot is a running forwarder, as `stats --json` lists it under "running".
type Snapshot struct {
	PID     int        `json:"pid"`
	Local   string     `json:"local"`
	Remote  string     `json:"remote"`
	Started time.Time  `json:"started"`
	Active  int        `json:"active"`
	Totals  Totals     `json:"totals"`
	Pool    pool.Stats `json:"pool"`

	// Host and ProcStart tell a live process from a dead one whose pid was
	// reused: the host name, and the start time in clock ticks since boot
	// (/proc/PID/stat field 22; 0 where there is no /proc).
	Host      string `json:"host,omitempty"`
	ProcStart uint64 `json:"proc_start,omitempty"`
}

// PoolStats are the warm pool's counters right now.
func (f *Forwarder) PoolStats() pool.Stats { return f.pool.Stats() }

// Snapshot is the forwarder right now, built from counters only: unlike
// Summary it copies no records, so it is cheap enough to call every second.
// Host and ProcStart are left for the Publisher to fill.
func (f *Forwarder) Snapshot() Snapshot {
	return Snapshot{
		PID:     os.Getpid(),
		Local:   f.Addr().String(),
		Remote:  f.cfg.Remote,
		Started: f.started,
		Active:  f.Active(),
		Totals:  f.Totals(),
		Pool:    f.PoolStats(),
	}
}

// Publisher keeps a forwarder's snapshot in the state directory while it
// runs and removes it on Close. Its goroutine only reads counters, so a slow
// or broken disk never slows the relay.
type Publisher struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Publish writes f's snapshot into d now, then again each PublishInterval
// when it changed (or the file went missing), until Close. onErr, if set, is
// called from the publisher's goroutine with every failure to write.
func (f *Forwarder) Publish(d StateDir, onErr func(error)) *Publisher {
	return f.publishEvery(d, PublishInterval, onErr)
}

func (f *Forwarder) publishEvery(d StateDir, every time.Duration, onErr func(error)) *Publisher {
	if onErr == nil {
		onErr = func(error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{cancel: cancel}
	p.wg.Add(1)
	go p.publishLoop(ctx, f, d, every, onErr)
	return p
}

// Close stops publishing and removes the snapshot; it returns once done.
func (p *Publisher) Close() {
	p.cancel()
	p.wg.Wait()
}

func (p *Publisher) publishLoop(ctx context.Context, f *Forwarder, d StateDir, every time.Duration, onErr func(error)) {
	defer p.wg.Done()
	pid := os.Getpid()
	start, _, _ := procStat(pid)
	host := hostname()
	path := filepath.Join(d.RunningDir(), strconv.Itoa(pid)+".json")
	var last Snapshot
	written := false
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s := f.Snapshot()
		s.Host, s.ProcStart = host, start
		if !written || s != last || !exists(path) {
			if err := d.writeSnapshot(s); err != nil {
				onErr(err)
				written = false
			} else {
				last, written = s, true
			}
		}
		select {
		case <-ctx.Done():
			if err := os.Remove(path); written && err != nil && !errors.Is(err, fs.ErrNotExist) {
				onErr(fmt.Errorf("remove snapshot: %w", err))
			}
			return
		case <-tick.C:
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

// writeSnapshot atomically replaces the snapshot of s.PID.
func (d StateDir) writeSnapshot(s Snapshot) error {
	dir, err := d.mkdir(runningDir)
	if err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// No fsync: a snapshot is worthless after a crash, and stats skips one
	// it cannot parse.
	tmp, err := writeTemp(dir, data, false)
	if err != nil {
		return err
	}
	final := filepath.Join(dir, strconv.Itoa(s.PID)+".json")
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file (mode 0600) in dir and
// returns its path.
func writeTemp(dir string, data []byte, sync bool) (string, error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// Running returns the snapshots of the forwarders running on this host,
// oldest first. It removes the snapshots of processes that are gone (killed
// before they could clean up) and temporary files left by dead writers. A
// missing running directory means none.
func (d StateDir) Running() ([]Snapshot, error) {
	dir := d.RunningDir()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			removeIfOlder(path, time.Minute)
			continue
		}
		pidText, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		var s Snapshot
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) { // its forwarder just exited
			continue
		}
		if err != nil {
			return nil, err
		}
		if json.Unmarshal(data, &s) != nil {
			// Not ours to judge unless its process is gone.
			if pid, err := strconv.Atoi(pidText); err == nil && !processLive(pid, 0) {
				os.Remove(path)
			}
			continue
		}
		if s.Host != "" && s.Host != hostname() {
			continue // a shared home directory: only that host can tell
		}
		if !processLive(s.PID, s.ProcStart) {
			os.Remove(path)
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return a.PID - b.PID
	})
	return out, nil
}

// processLive reports whether pid is a running process started at start
// (clock ticks since boot; 0 = unknown). A zombie counts as dead.
func processLive(pid int, start uint64) bool {
	if pid <= 0 || !processExists(pid) {
		return false
	}
	now, state, ok := procStat(pid)
	switch {
	case !ok:
		return true // no /proc, or it died just now: the next look will tell
	case state == 'Z' || state == 'X':
		return false
	}
	return start == 0 || now == start
}

func removeIfOlder(path string, age time.Duration) {
	if fi, err := os.Lstat(path); err == nil && time.Since(fi.ModTime()) > age {
		os.Remove(path)
	}
}
