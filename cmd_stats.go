package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fatih/color"
	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/state"
)

// stateDirFlag is shared by forward and stats: where live snapshots and the
// history of finished sessions are kept.
var stateDirFlag = &cli.StringFlag{
	Name:    "state-dir",
	Usage:   "where running forwarders and recent sessions are recorded (default $XDG_STATE_HOME/warmport or ~/.local/state/warmport)",
	EnvVars: []string{"WARMPORT_STATE_DIR"},
}

// recentShown bounds the recent sessions the table lists; --json lists all.
const recentShown = 20

var statsCommand = &cli.Command{
	Name:      "stats",
	Usage:     "show running forwarders and recent sessions, or one session's summary",
	ArgsUsage: "[ID]",
	Description: "Without ID: a table of the forwarders running now (live, at most about 1 s behind) and of the\n" +
		"last sessions that ended. With ID (or the start of one): that session's summary, as forward printed it.\n" +
		"Flags go before ID.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON on stdout: {\"running\":[...],\"recent\":[...]}, or one session's full summary with ID"},
		&cli.BoolFlag{Name: "watch", Usage: "redraw every second until Ctrl-C"},
		stateDirFlag,
	},
	OnUsageError: onUsageError,
	Action:       statsAction,
}

func statsAction(c *cli.Context) error {
	args := c.Args().Slice()
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return usageErrorf("flag %s after ID would be ignored: flags go first, as in warmport stats %s ID", a, a)
		}
	}
	if len(args) > 1 {
		return usageErrorf("unexpected argument %q: warmport stats takes at most one session ID", args[1])
	}
	if len(args) == 1 && c.Bool("watch") {
		return usageErrorf("--watch redraws the tables and takes no ID: drop --watch to see session %s", args[0])
	}
	dir, err := state.Resolve(c.String("state-dir"))
	if err != nil {
		return runtimeErrorf("%v", err)
	}
	w := c.App.Writer
	// stats' human output goes to stdout: color follows stdout, not stderr.
	color.NoColor = os.Getenv("NO_COLOR") != "" || !isTerminal(w)
	ctx := signalsFrom(c.Context).stopCtx
	// The work runs aside, so that stats answers a signal at once, whatever
	// the disk or a stalled stdout does.
	done := make(chan error, 1)
	go func() {
		switch {
		case len(args) == 1:
			done <- showSession(w, dir, args[0], c.Bool("json"))
		case c.Bool("watch"):
			done <- watchStats(ctx, w, dir, c.Bool("json"))
		default:
			done <- showStats(w, dir, c.Bool("json"))
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if c.Bool("watch") {
			return nil // how --watch ends
		}
		return runtimeErrorf("stopped by a signal")
	}
}

// showStats prints the tables of running forwarders and recent sessions,
// or their JSON.
func showStats(w io.Writer, dir string, asJSON bool) error {
	v, err := loadStats(dir)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, v)
	}
	var buf bytes.Buffer
	renderStats(&buf, escapeView(v), time.Now())
	if _, err = w.Write(buf.Bytes()); err != nil {
		return runtimeErrorf("write: %v", err)
	}
	return nil
}

// showSession prints one finished session: writeSummary's text, or its
// full JSON (the summary's fields, its connections, "id" and "pid").
func showSession(w io.Writer, path, id string, asJSON bool) error {
	s, err := readSession(path, id)
	if s == nil && err == nil { // no state directory
		err = fmt.Errorf("%w %q: %s does not exist, so no session has ended there yet", state.ErrNoSession, id, filepath.Join(path, "sessions"))
	}
	if errors.Is(err, state.ErrNoSession) {
		return runtimeErrorf("%s; warmport stats lists the recent ones", err)
	}
	if err != nil {
		return stateError(path, err)
	}
	if asJSON {
		return writeJSON(w, s)
	}
	writeSummary(w, escapeSession(s).Summary(), time.Local)
	return nil
}

// readSession reads session id from the state directory at path; a
// missing directory is (nil, nil).
func readSession(path, id string) (*state.Session, error) {
	d, err := openStateDir(path)
	if err != nil || d == nil {
		return nil, err
	}
	defer d.Close()
	return d.Session(id)
}

func writeJSON(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return runtimeErrorf("write JSON: %v", err)
	}
	return nil
}

// statsView is what stats shows; its JSON is `stats --json`'s output.
type statsView struct {
	Dir     string              `json:"state_dir"`
	Running []state.Snapshot    `json:"running"`
	Recent  []state.SessionInfo `json:"recent"`
	missing bool                // Dir does not exist
}

// openStateDir opens the state directory at path for reading; a missing
// one is (nil, nil).
func openStateDir(path string) (*state.Dir, error) {
	d, err := state.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return d, err
}

// stateError is the one line for a state directory stats cannot read.
func stateError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, state.ErrUnsafe):
		return runtimeErrorf("%v", err)
	case errors.As(err, &pe) && pe.Path == path && errors.Is(pe.Err, syscall.ENOTDIR):
		return runtimeErrorf("the state directory %s is not a directory: point --state-dir or WARMPORT_STATE_DIR at one", path)
	}
	return runtimeErrorf("cannot read the state directory %s: %v", path, oneLine(err.Error()))
}

// loadStats reads the state directory, which it never creates. A missing
// directory is no error: nothing ran with it yet.
func loadStats(path string) (statsView, error) {
	v := statsView{Dir: path, Running: []state.Snapshot{}, Recent: []state.SessionInfo{}}
	d, err := openStateDir(path)
	if err != nil {
		return v, stateError(path, err)
	}
	if d == nil {
		v.missing = true
		return v, nil
	}
	defer d.Close()
	running, err := d.Running()
	if err != nil {
		return v, stateError(path, err)
	}
	recent, err := d.Recent()
	if err != nil {
		return v, stateError(path, err)
	}
	v.Running = append(v.Running, running...)
	v.Recent = append(v.Recent, recent...)
	return v, nil
}

// renderStats prints the tables of running forwarders and recent sessions,
// or says plainly where it looked and why it found nothing. Uptimes count to
// now, and times show in now's location (time.Now's is the local one).
func renderStats(w io.Writer, v statsView, now time.Time) {
	if v.missing {
		fmt.Fprintf(w, "nothing recorded: the state directory %s does not exist yet\n", v.Dir)
		fmt.Fprintf(w, "%s\n", dim("(warmport forward creates it; --state-dir or WARMPORT_STATE_DIR choose another)"))
		return
	}
	fmt.Fprintf(w, "%s %s\n", dim("state directory"), v.Dir)
	if len(v.Running) == 0 {
		fmt.Fprintf(w, "%s %s\n", bold("running:"), "none")
		fmt.Fprintf(w, "  %s\n", dim("(no snapshot of a live forwarder in "+filepath.Join(v.Dir, "running")+")"))
	} else {
		fmt.Fprintf(w, "%s %d\n", bold("running:"), len(v.Running))
		named := slices.ContainsFunc(v.Running, func(s state.Snapshot) bool { return s.Name != "" })
		t := &table{cols: nameColumn(named, []column{{"PID", true}, {"LOCAL -> REMOTE", false}, {"UPTIME", true}, {"ACTIVE", true},
			{"CONNS", true}, {"UP", true}, {"DOWN", true}, {"IDLE", true}, {"HIT RATE", true}})}
		for _, s := range v.Running {
			active := fmt.Sprint
			if s.Active > 0 {
				active = green
			}
			cells, paint := nameCell(named, s.Name, []string{fmt.Sprint(s.PID), s.Local + " -> " + s.Remote, humanDuration(now.Sub(s.Started).Round(time.Second)),
				fmt.Sprint(s.Active), fmt.Sprint(s.Totals.Connections), humanBytes(s.Totals.BytesUp),
				humanBytes(s.Totals.BytesDown), fmt.Sprint(s.Pool.Idle), hitRateText(s.Pool)},
				[]func(...any) string{nil, nil, nil, active, nil, nil, nil, nil, hitRatePaint(s.Pool)})
			t.add(cells, paint)
		}
		t.write(w)
	}
	if len(v.Recent) == 0 {
		fmt.Fprintf(w, "%s %s\n", bold("recent sessions:"), "none")
		fmt.Fprintf(w, "  %s\n", dim("(no finished session in "+filepath.Join(v.Dir, "sessions")+")"))
		return
	}
	fmt.Fprintf(w, "%s %d\n", bold("recent sessions:"), len(v.Recent))
	shown := v.Recent[:min(len(v.Recent), recentShown)]
	named := slices.ContainsFunc(shown, func(s state.SessionInfo) bool { return s.Name != "" })
	t := &table{cols: nameColumn(named, []column{{"ID", false}, {"LOCAL -> REMOTE", false}, {"ENDED", false}, {"DURATION", true},
		{"CONNS", true}, {"FAILED", true}, {"UP", true}, {"DOWN", true}, {"HIT RATE", true}})}
	for _, s := range shown {
		failed := fmt.Sprint
		if s.Totals.Failed > 0 {
			failed = red
		}
		t.add(nameCell(named, s.Name, []string{s.ID, s.Local + " -> " + s.Remote + viaText(s.Via), s.Ended.In(now.Location()).Format("2006-01-02 15:04:05"),
			humanDuration(s.Ended.Sub(s.Started)), fmt.Sprint(s.Totals.Connections), fmt.Sprint(s.Totals.Failed),
			humanBytes(s.Totals.BytesUp), humanBytes(s.Totals.BytesDown), hitRateText(s.Pool)},
			[]func(...any) string{nil, nil, nil, nil, nil, failed, nil, nil, hitRatePaint(s.Pool)}))
	}
	t.write(w)
	if n := len(v.Recent) - recentShown; n > 0 {
		fmt.Fprintf(w, "  %s\n", dim(fmt.Sprintf("(%d older sessions not listed: warmport stats --json lists them all)", n)))
	}
	fmt.Fprintf(w, "  %s\n", dim("(warmport stats ID prints one session's summary)"))
}

// viaText follows REMOTE with the SSH server it was reached through.
func viaText(via string) string {
	if via == "" {
		return ""
	}
	return " via " + via
}

// nameColumn puts a NAME column after the first (PID, ID) when named: some
// row is a forward of warmport up. Without one the tables stay as forward
// alone has them.
func nameColumn(named bool, cols []column) []column {
	if !named {
		return cols
	}
	return slices.Insert(cols, 1, column{"NAME", false})
}

// nameCell is nameColumn for a row: its cells and paints with name added.
func nameCell(named bool, name string, cells []string, paint []func(...any) string) ([]string, []func(...any) string) {
	if !named {
		return cells, paint
	}
	if name == "" {
		name = "-"
	}
	return slices.Insert(cells, 1, name), slices.Insert(paint, 1, nil)
}

// watchStats redraws the tables every second until ctx is done (the first
// Ctrl-C), then returns nil: exit status 0. On a terminal each frame
// replaces the last in place; elsewhere frames follow each other. With
// asJSON each frame is one line of JSON.
func watchStats(ctx context.Context, w io.Writer, dir string, asJSON bool) error {
	tty := isTerminal(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for first := true; ; first = false {
		v, err := loadStats(dir)
		var buf bytes.Buffer
		switch {
		case asJSON && err != nil:
			return err
		case asJSON:
			json.NewEncoder(&buf).Encode(v)
		default:
			now := time.Now()
			fmt.Fprintf(&buf, "%s\n", dim(fmt.Sprintf("warmport stats, %s, every 1s; Ctrl-C stops", now.Format("15:04:05"))))
			if err != nil {
				fmt.Fprintf(&buf, "%s\n", red(err.Error()))
			} else {
				renderStats(&buf, escapeView(v), now)
			}
		}
		frame := buf.Bytes()
		if tty && !asJSON {
			// Home, each line cleared to its end, then the rest of the screen:
			// one write, so the redraw does not flicker.
			frame = bytes.ReplaceAll(frame, []byte("\n"), []byte("\x1b[K\n"))
			prefix := "\x1b[H"
			if first {
				prefix = "\x1b[H\x1b[2J"
			}
			frame = append(append([]byte(prefix), frame...), "\x1b[J"...)
		} else if !asJSON && !first {
			frame = append([]byte("\n"), frame...)
		}
		if _, err := w.Write(frame); err != nil {
			return runtimeErrorf("write: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// escapeView escapes control characters in the text stats prints from the
// state files, so a planted file cannot drive the terminal.
func escapeView(v statsView) statsView {
	v.Running = slices.Clone(v.Running)
	for i := range v.Running {
		r := &v.Running[i]
		r.Name, r.Local, r.Remote = escapeControls(r.Name), escapeControls(r.Local), escapeControls(r.Remote)
	}
	v.Recent = slices.Clone(v.Recent)
	for i := range v.Recent {
		r := &v.Recent[i]
		r.ID, r.Name, r.Local, r.Remote = escapeControls(r.ID), escapeControls(r.Name), escapeControls(r.Local), escapeControls(r.Remote)
		r.Via = escapeControls(r.Via)
	}
	return v
}

func escapeSession(s *state.Session) *state.Session {
	e := *s
	e.Local, e.Remote, e.Via = escapeControls(s.Local), escapeControls(s.Remote), escapeControls(s.Via)
	e.Connections = slices.Clone(s.Connections)
	for i := range e.Connections {
		r := &e.Connections[i]
		for _, f := range []*string{&r.Client, &r.Upstream, &r.Source, &r.ClosedBy, &r.Error} {
			*f = escapeControls(*f)
		}
	}
	return &e
}

// escapeControls writes control characters (C0, DEL, C1), bidirectional
// overrides and bytes that are not UTF-8 as Go escapes (\x1b, \u202e).
func escapeControls(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// hitRateText is the pool's hit rate as a percentage, "-" before any borrow.
func hitRateText(p pool.Stats) string {
	if p.Hits+p.Misses == 0 {
		return "-"
	}
	return percent(p.Hits, p.Hits+p.Misses)
}

// hitRatePaint is hitRateText's color: green from 80%, yellow from 40%.
func hitRatePaint(p pool.Stats) func(...any) string {
	if p.Hits+p.Misses == 0 {
		return fmt.Sprint
	}
	switch r := float64(p.Hits) / float64(p.Hits+p.Misses) * 100; {
	case r >= 80:
		return green
	case r >= 40:
		return yellow
	}
	return red
}
