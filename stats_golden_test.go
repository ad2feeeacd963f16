package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/fatih/color"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
	"github.com/warmport/warmport/state"
)

// goldenNow is the fixed "now" of the stats golden files, in a zone that
// is not UTC so that ENDED shows in now's location, not the machine's.
var goldenNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("CET", 3600))

// fakeStats is a state directory's view with forwarders whose hit rates
// take each color (and none), one address carrying an escape sequence as a
// planted state file could, and more recent sessions than the table lists.
func fakeStats() statsView {
	v := statsView{Dir: "/home/dev/.local/state/warmport"}
	for _, r := range []struct {
		pid, active               int
		local, remote             string
		age                       time.Duration
		conns                     uint64
		up, down                  int64
		idle, hits, misses, fails uint64
	}{
		{4242, 3, "127.0.0.1:8080", "db.internal:5432", 3*time.Hour + 25*time.Minute + 10*time.Second, 1234, 12 << 20, 3 << 29, 2, 1200, 34, 0},
		{4343, 0, "[::1]:6380", "cache:6379", 42 * time.Second, 10, 900, 40 << 10, 4, 5, 5, 0},
		{5150, 1, "127.0.0.1:9000", "10.0.0.9:9000\x1b[31m", 7*24*time.Hour + 5*time.Minute, 10, 1, 1, 0, 1, 9, 2},
		{5151, 0, "127.0.0.1:9001", "10.0.0.9:9001", 1500 * time.Millisecond, 0, 0, 0, 2, 0, 0, 0},
	} {
		v.Running = append(v.Running, state.Snapshot{PID: r.pid, Local: r.local, Remote: r.remote,
			Started: goldenNow.Add(-r.age).UTC(), Active: r.active,
			Totals: session.Totals{Connections: r.conns, Failed: r.fails, BytesUp: r.up, BytesDown: r.down},
			Pool:   pool.Stats{Hits: r.hits, Misses: r.misses, Dials: r.misses + r.idle, Idle: int(r.idle)}})
	}
	for i := range recentShown + 2 { // newest first, as the state directory lists them
		ended := goldenNow.Add(-time.Duration(i)*37*time.Minute - time.Duration(i*i)*time.Second).UTC()
		n := uint64(i*i*7 + 1)
		s := state.SessionInfo{ID: ended.Format("20060102-150405") + fmt.Sprintf("-%06x", 0xa1b2c3+i*4099),
			PID: 1000 + i, Local: fmt.Sprintf("127.0.0.1:%d", 8000+i%3), Remote: "db.internal:5432",
			Started: ended.Add(-time.Duration(i+1) * 95 * time.Second), Ended: ended,
			Totals: session.Totals{Connections: n, BytesUp: int64(n) * 300, BytesDown: int64(n) * 70 << 10},
			Pool:   pool.Stats{Hits: n - n/(uint64(i%4)+1), Misses: n / (uint64(i%4) + 1)}}
		if i%5 == 2 {
			s.Totals.Failed = uint64(i)
		}
		if i == 3 {
			s.Remote = "bidi\u202eoverride"
		}
		v.Recent = append(v.Recent, s)
	}
	return v
}

// TestStatsGolden: the stats tables, with running forwarders and recent
// sessions and with neither, without colors and with them, are what
// testdata/ holds. Run with -update to rewrite the files after a
// deliberate change, and read the diff.
func TestStatsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		view statsView
	}{
		{"stats", fakeStats()},
		{"stats-none", statsView{Dir: "/home/dev/.local/state/warmport"}},
		{"stats-missing", statsView{Dir: "/home/dev/.local/state/warmport", missing: true}},
	} {
		goldenColors(t, tc.name, func(w io.Writer) { renderStats(w, escapeView(tc.view), goldenNow) })
	}
}

// goldenColors renders without colors and with them (as NO_COLOR and a
// terminal set color.NoColor) and compares each output with
// testdata/NAME.golden and testdata/NAME-color.golden.
func goldenColors(t *testing.T, name string, render func(w io.Writer)) {
	t.Helper()
	saved := color.NoColor
	t.Cleanup(func() { color.NoColor = saved })
	for _, colors := range []bool{false, true} {
		file := name
		if colors {
			file += "-color"
		}
		t.Run(file, func(t *testing.T) {
			color.NoColor = !colors
			var b bytes.Buffer
			render(&b)
			golden(t, filepath.Join("testdata", file+".golden"), b.Bytes())
		})
	}
}
