package main

import (
	"sync"

	"github.com/warmport/warmport/session"
	"github.com/warmport/warmport/state"
)

// stateRecorder is forward's side of the state directory: it publishes live
// snapshots while the forwarder runs and saves the session at exit. Nothing
// it does can stop forwarding: its first failure is one warning line, and
// later ones are silent.
type stateRecorder struct {
	dir  *state.Dir // nil when it cannot be used
	pub  *state.Publisher
	once sync.Once
	warn func(err error)
}

// forwardersSnapshot is the plain snapshot function the state directory is
// fed by: counters only, cheap enough for every second.
func forwardersSnapshot(runs []*forwardRun) func() []state.Snapshot {
	return func() []state.Snapshot {
		out := make([]state.Snapshot, len(runs))
		for i, r := range runs {
			out[i] = state.Snapshot{Name: r.name, Local: r.fw.Addr().String(), Remote: r.remote, Started: r.fw.Started(),
				Active: r.fw.Active(), Totals: r.fw.Totals(), Pool: r.fw.PoolStats()}
		}
		return out
	}
}

// startStateRecorder opens (or creates) the state directory named by the
// --state-dir flag (or its defaults) and starts publishing snap there.
func startStateRecorder(flagDir string, snap func() []state.Snapshot, printf func(string, ...any)) *stateRecorder {
	r := &stateRecorder{}
	path, err := state.Resolve(flagDir)
	r.warn = func(err error) {
		r.once.Do(func() {
			where := ""
			if path != "" {
				where = " in " + path
			}
			printf("warmport: warning: cannot record state%s: %s; forwarding goes on, but warmport stats will not show this session\n",
				where, oneLine(err.Error()))
		})
	}
	if err == nil {
		r.dir, err = state.Create(path)
	}
	if err != nil {
		r.warn(err)
		return r
	}
	r.pub = state.PublishAll(r.dir, snap, r.warn)
	return r
}

// save adds the finished session of the forward called name ("" for
// forward) to the history.
func (r *stateRecorder) save(name string, sum *session.Summary) {
	if r.dir == nil {
		return
	}
	if _, err := r.dir.SaveNamedSession(name, sum); err != nil {
		r.warn(err)
	}
}

// close stops publishing, removes the live snapshot and lets go of the
// directory. Calls after the first do nothing.
func (r *stateRecorder) close() {
	if r.pub != nil {
		r.pub.Close()
		r.pub = nil
	}
	if r.dir != nil {
		r.dir.Close()
		r.dir = nil
	}
}
