package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/state"
)

// TestStatsRecentVia: a session through --via keeps its SSH server in the
// history: `stats --json` has it as "via" and the table follows REMOTE with
// it; a session without --via has "" and no "via" in its row.
func TestStatsRecentVia(t *testing.T) {
	s := newViaSSHD(t)
	dir := t.TempDir()
	up := startUpstream(t, echo)
	for _, args := range [][]string{append(s.args(), "0", up.addr()), {"0", up.addr()}} {
		p := startWarmportEnv(t, append(s.env(), "WARMPORT_STATE_DIR="+dir), append([]string{"forward", "-q"}, args...)...)
		echoOnce(t, p.waitReady(t), "hello")
		if r := p.stop(t); r.status != 0 {
			t.Fatalf("forward %v: status %d\n%s", args, r.status, r.stderr)
		}
	}
	var out struct {
		Recent []struct {
			Via *string `json:"via"`
		} `json:"recent"`
	}
	r := statsRun(t, dir, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Recent) != 2 {
		t.Fatalf("stats --json: %v, %d recent sessions; want 2\n%s", err, len(out.Recent), r.stdout)
	}
	// Newest first: the plain session, then the one through sshd.
	for i, want := range []string{"", s.via()} {
		if got := out.Recent[i].Via; got == nil || *got != want {
			t.Errorf("recent[%d].via: got %v; want %q", i, got, want)
		}
	}
	r = statsRun(t, dir)
	var rows []string
	for _, l := range strings.Split(r.stdout+r.stderr, "\n") {
		if strings.Contains(l, up.addr()) {
			rows = append(rows, l)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("table rows naming %s: got %q; want 2\n%s", up.addr(), rows, r.stdout+r.stderr)
	}
	if !strings.Contains(rows[1], up.addr()+" via "+s.via()) {
		t.Errorf("row %q; want REMOTE followed by via %s", rows[1], s.via())
	}
	if strings.Contains(rows[0], " via ") {
		t.Errorf("row %q of a session without --via names one", rows[0])
	}
}

// TestStatsViaEscaped: a via planted with an escape sequence in a state
// file reaches the terminal escaped, as the other fields do.
func TestStatsViaEscaped(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := statsView{Dir: "/state", Recent: []state.SessionInfo{{ID: "20261125-120000-000001", Local: "127.0.0.1:1",
		Remote: "db:5432", Via: "evil@host:22\x1b[31m", Started: now.Add(-time.Minute), Ended: now}}}
	var b bytes.Buffer
	renderStats(&b, escapeView(v), now)
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), "db:5432 via evil@host:22") {
		t.Fatalf("got %q; want the via shown with its escape escaped", b.String())
	}
}
