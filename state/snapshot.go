package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// Snapshot is a running forwarder, as `stats --json` lists it under "running".
type Snapshot struct {
	PID     int            `json:"pid"`
	Name    string         `json:"name"` // the forward's name in `warmport up`'s profile; "" for forward
	Local   string         `json:"local"`
	Remote  string         `json:"remote"`
	Started time.Time      `json:"started"`
	Active  int            `json:"active"`
	Totals  session.Totals `json:"totals"`
	Pool    pool.Stats     `json:"pool"`

	// Host and ProcStart tell a live process from a dead one whose pid was
	// reused: the host name, and the start time in clock ticks since boot
	// (/proc/PID/stat field 22; 0 where there is no /proc).
	Host      string `json:"host,omitempty"`
	ProcStart uint64 `json:"proc_start,omitempty"`
}

// Publisher keeps a forwarder's snapshot in the state directory while it
// runs and removes it on Close. Its goroutine only calls the snapshot
// function, so a slow or broken disk never slows the relay.
type Publisher struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Publish writes snap() into d now, then again each PublishInterval when it
// changed (or the file went missing), until Close. snap should be cheap
// (counters, no records); Publish fills PID, Host and ProcStart. onErr, if
// set, is called from the publisher's goroutine with every failure to write.
func Publish(d *Dir, snap func() Snapshot, onErr func(error)) *Publisher {
	return PublishAll(d, func() []Snapshot { return []Snapshot{snap()} }, onErr)
}

// PublishAll is Publish for a process that runs several forwarders (`warmport
// up`): one file holds them all, so they appear and go together.
func PublishAll(d *Dir, snap func() []Snapshot, onErr func(error)) *Publisher {
	return publishAllEvery(d, snap, PublishInterval, onErr)
}

func publishEvery(d *Dir, snap func() Snapshot, every time.Duration, onErr func(error)) *Publisher {
	return publishAllEvery(d, func() []Snapshot { return []Snapshot{snap()} }, every, onErr)
}

func publishAllEvery(d *Dir, snap func() []Snapshot, every time.Duration, onErr func(error)) *Publisher {
	if onErr == nil {
		onErr = func(error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{cancel: cancel}
	p.wg.Add(1)
	go p.publishLoop(ctx, d, snap, every, onErr)
	return p
}

// Close stops publishing and removes the snapshot; it returns once done.
func (p *Publisher) Close() {
	p.cancel()
	p.wg.Wait()
}

func (p *Publisher) publishLoop(ctx context.Context, d *Dir, snap func() []Snapshot, every time.Duration, onErr func(error)) {
	defer p.wg.Done()
	pid := os.Getpid()
	start, _, _ := procStat(pid)
	host := hostname()
	name := strconv.Itoa(pid) + ".json"
	var last []Snapshot
	written := false
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s := snap()
		for i := range s {
			s[i].PID, s[i].Host, s[i].ProcStart = pid, host, start
		}
		if !written || !slices.Equal(s, last) || !d.hasSnapshot(name) {
			if err := d.writeSnapshots(pid, s); err != nil {
				onErr(err)
				written = false
			} else {
				last, written = s, true
			}
		}
		select {
		case <-ctx.Done():
			if written {
				d.removeSnapshot(name)
			}
			return
		case <-tick.C:
		}
	}
}

var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

func (d *Dir) hasSnapshot(name string) bool {
	dir, err := d.sub(runningDir, false)
	if err != nil || dir == nil {
		return false
	}
	defer dir.close()
	return dir.isRegular(name)
}

func (d *Dir) removeSnapshot(name string) {
	if dir, err := d.sub(runningDir, false); err == nil && dir != nil {
		dir.remove(name, 0)
		dir.close()
	}
}

// writeSnapshot atomically replaces the snapshot of s.PID.
func (d *Dir) writeSnapshot(s Snapshot) error { return d.writeSnapshots(s.PID, []Snapshot{s}) }

// writeSnapshots atomically replaces the snapshots of pid: one object for
// one forwarder, as before `warmport up`, an array of them for several.
func (d *Dir) writeSnapshots(pid int, ss []Snapshot) error {
	dir, err := d.sub(runningDir, true)
	if err != nil {
		return err
	}
	defer dir.close()
	var data []byte
	if len(ss) == 1 {
		data, err = json.Marshal(ss[0])
	} else {
		data, err = json.Marshal(ss)
	}
	if err != nil {
		return err
	}
	// No fsync: a snapshot is worthless after a crash, and stats skips one
	// it cannot parse.
	tmp, err := dir.writeTemp(data, false)
	if err != nil {
		return err
	}
	if err := dir.rename(tmp, strconv.Itoa(pid)+".json"); err != nil {
		dir.remove(tmp, 0)
		return err
	}
	return nil
}

// Running returns the snapshots of the forwarders running on this host,
// oldest first. A snapshot counts only when its file's name, its pid and
// its process's start time agree. Running removes the snapshots of
// processes that are gone (killed before they could clean up) and
// temporary files left by dead writers; it skips, and leaves alone,
// anything warmport could not have written. A missing running directory
// means none.
func (d *Dir) Running() ([]Snapshot, error) {
	dir, err := d.sub(runningDir, false)
	if err != nil || dir == nil {
		return nil, err
	}
	defer dir.close()
	names, err := dir.names()
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, name := range names {
		if isTempName(name) {
			dir.remove(name, time.Minute)
			continue
		}
		pid, ok := snapshotPID(name)
		if !ok {
			continue
		}
		data, err := dir.readFile(name)
		switch {
		case errors.Is(err, fs.ErrNotExist): // its forwarder just exited
			continue
		case errors.Is(err, fs.ErrPermission):
			return nil, err
		case err != nil: // not a regular file, or too big: not ours
			continue
		}
		ss, err := decodeSnapshots(data)
		if err != nil {
			// Not ours to judge unless its process is gone.
			if _, alive := processStart(pid); !alive {
				dir.remove(name, 0)
			}
			continue
		}
		if s := ss[0]; s.Host != "" && s.Host != hostname() {
			continue // a shared home directory: only that host can tell
		}
		if slices.ContainsFunc(ss, func(s Snapshot) bool { return s.PID != pid || !processLive(pid, s.ProcStart) }) {
			dir.remove(name, 0)
			continue
		}
		out = append(out, ss...)
	}
	slices.SortStableFunc(out, func(a, b Snapshot) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return a.PID - b.PID
	}) // stable: the forwards of one `up` stay in profile order
	return out, nil
}

// decodeSnapshot parses a running forwarder's file.
func decodeSnapshot(data []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("not a snapshot: %w", err)
	}
	return s, nil
}

// decodeSnapshots parses a running process's file: one snapshot, or an
// array of at least one.
func decodeSnapshots(data []byte) ([]Snapshot, error) {
	if d := bytes.TrimLeft(data, " \t\r\n"); len(d) == 0 || d[0] != '[' {
		s, err := decodeSnapshot(data)
		return []Snapshot{s}, err
	}
	var ss []Snapshot
	if err := json.Unmarshal(data, &ss); err != nil {
		return nil, fmt.Errorf("not a snapshot: %w", err)
	}
	if len(ss) == 0 {
		return nil, errors.New("not a snapshot: an empty array")
	}
	return ss, nil
}

// processStart reports whether pid is a live process and, where /proc
// tells, its start time (clock ticks since boot; 0 where it cannot tell). A
// zombie counts as dead.
func processStart(pid int) (start uint64, alive bool) {
	if pid <= 0 || !processExists(pid) {
		return 0, false
	}
	start, state, ok := procStat(pid)
	switch {
	case !ok:
		return 0, true // no /proc, or it died just now: the next look will tell
	case state == 'Z' || state == 'X':
		return 0, false
	}
	return start, true
}

// procKnown is whether this OS tells processes' start times.
var procKnown = sync.OnceValue(func() bool {
	_, _, ok := procStat(os.Getpid())
	return ok
})

// processLive reports whether pid is the process started at start. Where
// start times are known, a snapshot without one (0) names no process.
func processLive(pid int, start uint64) bool {
	now, alive := processStart(pid)
	if !alive || !procKnown() {
		return alive
	}
	return start != 0 && now == start
}
