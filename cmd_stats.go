package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/pool"
)

// stateDirFlag is shared by forward and stats: where live snapshots and the
// history of finished sessions are kept.
var stateDirFlag = &cli.StringFlag{
	Name:    "state-dir",
	Usage:   "where running forwarders and recent sessions are recorded",
	EnvVars: []string{"WARMPORT_STATE_DIR"},
}

// renderSummary prints a session's summary: a table of its connections and
// a totals line. forward prints it at exit and `stats ID` prints it again.
func renderSummary(w io.Writer, s *forward.Summary) {
	dur := s.Ended.Sub(s.Started)
	fmt.Fprintf(w, "%s %s -> %s, %s, started %s\n", bold("warmport session"), s.Local, s.Remote,
		humanDuration(dur), s.Started.Local().Format("2006-01-02 15:04:05"))
	if len(s.Connections) > 0 {
		t := &table{cols: []column{{"ID", true}, {"CLIENT", false}, {"SOURCE", false}, {"DIAL", true},
			{"DURATION", true}, {"UP", true}, {"DOWN", true}, {"CLOSED BY", false}}}
		for _, r := range s.Connections {
			closed := r.ClosedBy
			if r.Error != "" {
				closed += ": " + r.Error
			}
			t.add([]string{fmt.Sprint(r.ID), r.Client, r.Source, fmtMS(r.DialMS), fmtMS(r.DurationMS),
				humanBytes(r.BytesUp), humanBytes(r.BytesDown), closed},
				[]func(...any) string{nil, nil, sourceColor(r.Source), nil, nil, nil, nil, closedColor(r.ClosedBy)})
		}
		t.write(w)
	}
	if s.Dropped > 0 {
		fmt.Fprintf(w, "  %s\n", dim(fmt.Sprintf("(%d earlier connections not listed; the totals count them)", s.Dropped)))
	}
	fmt.Fprintf(w, "%s %s\n", bold("total:"), totalsLine(s.Totals, s.Pool))
}

func totalsLine(t forward.Totals, p pool.Stats) string {
	failed := fmt.Sprintf("%d failed", t.Failed)
	if t.Failed > 0 {
		failed = red(failed)
	}
	return fmt.Sprintf("%d connections (%s), up %s, down %s; pool %s",
		t.Connections, failed, humanBytes(t.BytesUp), humanBytes(t.BytesDown), poolLine(p))
}

func poolLine(p pool.Stats) string {
	s := fmt.Sprintf("hit rate %s (%d hits, %d misses)", hitRate(p), p.Hits, p.Misses)
	for _, c := range []struct {
		n    uint64
		name string
	}{{p.Stale, "stale"}, {p.Evicted, "evicted"}, {p.Expired, "expired"}, {p.Reused, "reused"}, {p.Dials, "dials"}} {
		if c.n > 0 {
			s += fmt.Sprintf(", %d %s", c.n, c.name)
		}
	}
	return s
}

func hitRate(p pool.Stats) string {
	if p.Hits+p.Misses == 0 {
		return "-"
	}
	r := float64(p.Hits) / float64(p.Hits+p.Misses) * 100
	s := fmt.Sprintf("%.0f%%", r)
	switch {
	case r >= 80:
		return green(s)
	case r >= 40:
		return yellow(s)
	}
	return red(s)
}
