package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/profile"
	"github.com/warmport/warmport/session"
	"github.com/warmport/warmport/upstream/sshvia"
)

// A session is one run of warmport forward or warmport up: its forwards
// listen, print their ready lines, serve until a signal, COMMAND's exit or
// --exit-idle, drain together and print their summaries. forward is a
// session of one unnamed forward; up one of a profile's forwards.

// forwardSpec is one forward of a session.
type forwardSpec struct {
	name          string // its profile table's name; "" for warmport forward
	local, remote string // checked LOCAL and REMOTE
	cfg           forward.Config
	requireRemote bool
	ssh           sshvia.Config // --via and its options; Via "" without SSH
	tunnel        *sshTunnel    // its SSH connection, once open (ssh_session.go)
	tls           bool          // --tls: the JSON's "tls"
	tlsWarning    string        // a line to print once after the ready line, or ""
}

// sessionOpts are the settings of the whole process (the process-wide flags).
type sessionOpts struct {
	up           bool // warmport up: names on every line, {"forwards":[...]} JSON
	json, quiet  bool
	jsonFile     string
	stateDir     string
	drainTimeout time.Duration
	exitIdle     time.Duration
	command      []string
}

// sessionOptions reads the process-wide flags, each from the context from
// returns for it.
func sessionOptions(from func(name string) *cli.Context) sessionOpts {
	return sessionOpts{json: from("json").Bool("json"), quiet: from("quiet").Bool("quiet"),
		jsonFile: from("json-file").String("json-file"), stateDir: from("state-dir").String("state-dir"),
		drainTimeout: from("drain-timeout").Duration("drain-timeout"), exitIdle: from("exit-idle").Duration("exit-idle")}
}

// forwardRun is one forward while it runs.
type forwardRun struct {
	forwardSpec
	fw    *forward.Forwarder
	dials *dialWatch
}

// tag is what names the forward at the end of a line: " (db)", or "".
func (r *forwardRun) tag() string {
	if r.name == "" {
		return ""
	}
	return " (" + r.name + ")"
}

// namedError puts the forward's name before err's message, keeping its
// exit status.
func namedError(name string, err error) error {
	var ec cli.ExitCoder
	if name == "" || !errors.As(err, &ec) {
		return err
	}
	return cli.Exit(fmt.Sprintf("forward %s: %s", name, err.Error()), ec.ExitCode())
}

// startForwards listens on every forward's LOCAL, in order; when one cannot
// listen, those already listening are shut down: all or nothing.
func startForwards(specs []forwardSpec, o sessionOpts, out *lineQueue) ([]*forwardRun, error) {
	runs := make([]*forwardRun, 0, len(specs))
	for _, s := range specs {
		r := &forwardRun{forwardSpec: s}
		if !o.quiet {
			prefix := ""
			if s.name != "" {
				prefix = s.name + " "
			}
			r.cfg.OnClose = func(rec session.Record) { out.record(prefix + formatRecord(rec) + "\n") }
		}
		// One forward stops on its own idle clock; several share watchIdle's.
		r.cfg.ExitIdle = 0
		if len(specs) == 1 {
			r.cfg.ExitIdle = o.exitIdle
		}
		r.cfg.Logf = r.noticef(out)
		r.dials = newDialWatch(s.remote+r.tag(), s.requireRemote, out.printf)
		r.cfg.Pool.OnDial = r.dials.report
		s.tunnel.upstream(&r.cfg) // --via: channels of its SSH connection
		if s.tlsWarning != "" {
			r.dials.held = append(r.dials.held, "warmport: warning: "+s.tlsWarning+r.tag()+"\n")
		}
		fw, err := forward.New(r.cfg)
		if err != nil {
			shutdownAll(runs, context.Background())
			return nil, namedError(s.name, listenError(s.local, err))
		}
		r.fw = fw
		s.tunnel.serves(fw)
		runs = append(runs, r)
	}
	return runs, nil
}

// shutdownAll drains every forward at once, so the whole drain takes at
// most ctx's time, and returns their summaries in order.
func shutdownAll(runs []*forwardRun, ctx context.Context) []*session.Summary {
	sums := make([]*session.Summary, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i] = r.fw.Shutdown(ctx)
		}()
	}
	wg.Wait()
	return sums
}

func runSession(c *cli.Context, specs []forwardSpec, o sessionOpts) error {
	jsonFile, err := openJSONFile(o.jsonFile)
	if err != nil {
		return err
	}
	stderr := newProgressWriter(c.App.ErrWriter)
	out := newLineQueue(stderr) // See output.go
	sigs := signalsFrom(c.Context)
	tunnels, err := openTunnels(sigs.stopCtx, specs, out, o.up)
	if err != nil {
		dropJSONFile(jsonFile)
		return err
	}
	defer closeTunnels(tunnels) // after the forwards' drain: their channels need it
	runs, err := startForwards(specs, o, out)
	if err != nil {
		dropJSONFile(jsonFile)
		return err
	}
	for _, r := range runs {
		if err := requireRemote(sigs.stopCtx, r); err != nil {
			shutdownAll(runs, context.Background())
			dropJSONFile(jsonFile)
			return err
		}
	}
	for _, r := range runs {
		r.dials.readyLine(out.writeNow, "warmport: forwarding %s -> %s%s\n", r.fw.Addr(), r.remote, r.tag())
	}
	state := startStateRecorder(o.stateDir, forwardersSnapshot(runs), out.printf) // See cmd_stats.go
	defer state.close()

	stopCtx, killCtx := sigs.stopCtx, sigs.killCtx
	var child *childProc
	if len(o.command) > 0 {
		// COMMAND owns the terminal: Ctrl-C reaches it directly and is its
		// to handle; SIGTERM is passed on. Its exit ends the session.
		child, err = startChild(o.command, childEnv(runs), c.App.Writer, c.App.ErrWriter)
		if err != nil {
			shutdownAll(runs, context.Background())
			dropJSONFile(jsonFile)
			return err
		}
		childDone, stopServe := context.WithCancel(context.Background())
		defer stopServe()
		kill, killChild := context.WithCancel(context.Background())
		defer killChild()
		stopCtx, killCtx = childDone, kill
		go child.supervise(sigs.relay, stopServe, killChild)
	}

	serveErr, idle := serveAll(stopCtx, runs, o.exitIdle)
	if idle {
		out.printf("warmport: no connection for %s, exiting\n", o.exitIdle)
		if child != nil {
			child.terminate()
		}
	}
	status := 0
	if child != nil {
		status = child.wait()
	}
	drainCtx, cancel := context.WithTimeout(killCtx, o.drainTimeout)
	defer cancel()
	sums := shutdownAll(runs, drainCtx)
	// What matters most first: a stalled terminal may block what follows.
	for i, r := range runs {
		state.save(r.name, sums[i])
	}
	state.close()
	doc := sessionJSON(runs, sums, o.up)
	var outErr error
	if o.json {
		if err := json.NewEncoder(c.App.Writer).Encode(doc); err != nil {
			outErr = runtimeErrorf("write the JSON summary: %v", err)
		}
	}
	if err := writeJSONFile(jsonFile, doc); err != nil && outErr == nil {
		outErr = err
	}
	interrupted := sigs.stopCtx.Err() != nil && isTerminal(c.App.ErrWriter)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		dropped := out.close()
		if interrupted {
			fmt.Fprintln(stderr) // the terminal echoed ^C where the cursor was
		}
		writeSummaries(stderr, runs, sums, o.up)
		if dropped > 0 {
			fmt.Fprintf(stderr, "  %s\n", dim(fmt.Sprintf("(%d lines dropped: stderr did not keep up)", dropped)))
		}
	}()
	stderr.wait(printed, killCtx)
	if outErr != nil {
		return outErr
	}
	if serveErr != nil {
		return serveErr
	}
	if status != 0 {
		return cli.Exit("", status)
	}
	return nil
}

// requireRemote waits for the warm pool's first dial (bounded by
// --dial-timeout) and turns its failure into exit 1: ssh's
// ExitOnForwardFailure for scripts that would rather stop than wait. A
// signal meanwhile ends the wait; the session then stops as usual.
func requireRemote(stop context.Context, r *forwardRun) error {
	if !r.requireRemote {
		return nil
	}
	select {
	case err := <-r.dials.first:
		if err == nil {
			return nil
		}
		return namedError(r.name, runtimeErrorf("cannot reach %s: %s; start it, fix REMOTE, or drop --require-remote to forward anyway", r.remote, oneLine(err.Error())))
	case <-stop.Done():
		return nil
	}
}

// childEnv is what COMMAND is told: WARMPORT_ADDR and WARMPORT_PORT for
// forward, WARMPORT_<NAME>_ADDR and _PORT for each forward of up. PORT is
// empty for a Unix socket.
func childEnv(runs []*forwardRun) []string {
	var env []string
	for _, r := range runs {
		port := ""
		if a, ok := r.fw.Addr().(*net.TCPAddr); ok {
			port = strconv.Itoa(a.Port)
		}
		prefix := "WARMPORT_"
		if r.name != "" {
			prefix += profile.EnvName(r.name) + "_"
		}
		env = append(env, prefix+"ADDR="+r.fw.Addr().String(), prefix+"PORT="+port)
	}
	return env
}

// serveAll serves every forward until ctx ends, one of them fails, or no
// connection was open on any of them for exitIdle (idle is then true).
func serveAll(ctx context.Context, runs []*forwardRun, exitIdle time.Duration) (err error, idle bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.fw.Serve(ctx)
			cancel() // one forward stopping stops them all
		}()
	}
	watched := make(chan bool, 1)
	if exitIdle > 0 && len(runs) > 1 {
		go func() {
			idle := watchIdle(ctx, runs, exitIdle)
			if idle {
				cancel()
			}
			watched <- idle
		}()
	} else {
		watched <- false
	}
	wg.Wait()
	cancel()
	idle = <-watched
	for i, e := range errs {
		switch {
		case errors.Is(e, forward.ErrIdle):
			idle = true
		case e != nil && err == nil:
			err = namedError(runs[i].name, runtimeErrorf("%v", e))
		}
	}
	return err, idle
}

// watchIdle returns true once no forward has had a connection open for d;
// false when ctx ends first.
// It looks a few times per d: a connection that opened and closed between
// two looks still shows in the count of connections.
func watchIdle(ctx context.Context, runs []*forwardRun, d time.Duration) bool {
	tick := time.NewTicker(min(max(d/20, 5*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	since := time.Now()
	var seen uint64
	for {
		select {
		case <-ctx.Done():
			return false
		case now := <-tick.C:
			var conns uint64
			active := 0
			for _, r := range runs {
				active += r.fw.Active()
				conns += r.fw.Totals().Connections
			}
			if active > 0 || conns != seen {
				since, seen = now, conns
				continue
			}
			if now.Sub(since) >= d {
				return true
			}
		}
	}
}

// namedSummary is a forward's summary as --json prints it: with its name.
type namedSummary struct {
	Name string `json:"name"`
	*session.Summary
	TLS bool `json:"tls"`
}

// sessionJSON is what --json and --json-file write: the summary of forward,
// or {"forwards":[...]} of up, in profile order.
func sessionJSON(runs []*forwardRun, sums []*session.Summary, up bool) any {
	all := make([]namedSummary, len(runs))
	for i, r := range runs {
		all[i] = namedSummary{Name: r.name, Summary: sums[i], TLS: r.tls}
	}
	if !up {
		return all[0]
	}
	return struct {
		Forwards []namedSummary `json:"forwards"`
	}{all}
}

// writeSummaries prints forward's summary, or up's: each forward's, under
// its name, then the totals of all.
func writeSummaries(w io.Writer, runs []*forwardRun, sums []*session.Summary, up bool) {
	if !up {
		writeSummary(w, sums[0], time.Local)
		return
	}
	var t session.Totals
	var p pool.Stats
	for i, r := range runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s %s\n", bold("forward"), r.name)
		writeSummary(w, sums[i], time.Local)
		s := sums[i]
		t.Connections += s.Totals.Connections
		t.Failed += s.Totals.Failed
		t.Denied += s.Totals.Denied
		t.BytesUp += s.Totals.BytesUp
		t.BytesDown += s.Totals.BytesDown
		p.Hits, p.Misses, p.Stale = p.Hits+s.Pool.Hits, p.Misses+s.Pool.Misses, p.Stale+s.Pool.Stale
		p.Evicted, p.Expired, p.Reused = p.Evicted+s.Pool.Evicted, p.Expired+s.Pool.Expired, p.Reused+s.Pool.Reused
		p.Dials, p.Idle = p.Dials+s.Pool.Dials, p.Idle+s.Pool.Idle
	}
	fmt.Fprintf(w, "\n%s %s\n", bold(fmt.Sprintf("all %d forwards:", len(runs))), totals(t, p))
}
