package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fatih/color"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

var update = flag.Bool("update", false, "rewrite testdata/ golden files and docs/warmport.1 from the code")

// fakeSession is a deterministic session of n connections, most of them
// short and warm, a few long, cold, failed or timed out, kept as the
// forwarder keeps them (the last DefaultMaxRecords).
func fakeSession(n int) *session.Summary {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := &session.Summary{Local: "127.0.0.1:8080", Remote: "db.internal:5432", Started: start,
		Ended: start.Add(time.Duration(n)*120*time.Millisecond + 3*time.Second)}
	for i := 1; i <= n; i++ {
		r := session.Record{ID: uint64(i), Client: fmt.Sprintf("127.0.0.1:%d", 40000+i%20000), Upstream: "10.0.0.5:5432",
			Source: "warm", DialMS: 0.012 + float64(i%7)/1000, Started: start.Add(time.Duration(i) * 120 * time.Millisecond),
			DurationMS: 0.4 + float64(i%13)*0.7, BytesUp: int64(64 + i%5*100), BytesDown: int64(1024 + i%11*4096), ClosedBy: "client"}
		// A busier middle third, so the sparkline has a shape.
		if i > n/3 && i < 2*n/3 {
			r.Started = start.Add(time.Duration(n/3)*120*time.Millisecond + time.Duration(i-n/3)*40*time.Millisecond)
		}
		switch {
		case i%97 == 0:
			r.Source, r.DialMS, r.Upstream = "cold", 0, ""
			r.ClosedBy, r.Error, r.DurationMS, r.BytesUp, r.BytesDown = "error", "dial upstream: connect: connection refused", 0.3, 0, 0
		case i%10 == 3:
			r.Source, r.DialMS = "cold", 1.2
		case i%53 == 0:
			r.ClosedBy, r.DurationMS = "timeout", 30000
		case i%17 == 0:
			r.ClosedBy, r.DurationMS = "remote", 2400+float64(i)
		}
		if i == n && n > 1 {
			r.ClosedBy, r.DurationMS = "shutdown", 2500
		}
		s.Totals.Connections++
		if r.ClosedBy == "error" {
			s.Totals.Failed++
		}
		if r.Source == "warm" {
			s.Pool.Hits++
		} else {
			s.Pool.Misses++
		}
		s.Pool.Dials++
		s.Totals.BytesUp += r.BytesUp
		s.Totals.BytesDown += r.BytesDown
		s.Connections = append(s.Connections, r)
	}
	if d := len(s.Connections) - session.DefaultMaxRecords; d > 0 {
		s.Connections, s.Dropped = s.Connections[d:], uint64(d)
	}
	s.Pool.Dials += 2
	s.Pool.Idle = 2
	return s
}

// TestSummaryGolden: the exit summary at 0, 1, 30 and 5000 connections,
// without colors and with them, is what testdata/ holds. Run with -update
// to rewrite the files after a deliberate change, and read the diff.
func TestSummaryGolden(t *testing.T) {
	saved := color.NoColor
	t.Cleanup(func() { color.NoColor = saved })
	for _, n := range []int{0, 1, 30, 5000} {
		for _, colors := range []bool{false, true} {
			name := fmt.Sprintf("summary-%d", n)
			if colors {
				name += "-color"
			}
			t.Run(name, func(t *testing.T) {
				color.NoColor = !colors
				var b bytes.Buffer
				writeSummary(&b, fakeSession(n), time.UTC)
				golden(t, filepath.Join("testdata", name+".golden"), b.Bytes())
			})
		}
	}
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -run '%s' -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// TestSummaryNumbers: percentages never claim 100% or 0% against the
// counts, counts of one are singular, and the table stays bounded.
func TestSummaryNumbers(t *testing.T) {
	for _, tc := range []struct {
		n, total uint64
		want     string
	}{
		{0, 0, "-"}, {0, 5, "0%"}, {5, 5, "100%"}, {538, 540, "99.6%"}, {9999, 10000, "99.9%"},
		{99999, 100000, "99.9%"}, {1, 1000, "<1%"}, {1, 2, "50%"}, {994, 1000, "99%"},
	} {
		if got := percent(tc.n, tc.total); got != tc.want {
			t.Errorf("percent(%d, %d): got %q; want %q", tc.n, tc.total, got, tc.want)
		}
	}
	for _, tc := range []struct {
		p    pool.Stats
		want string
	}{
		{pool.Stats{Hits: 1, Misses: 1, Dials: 1}, "hit rate 50% (1 hit, 1 miss), 1 dial"},
		{pool.Stats{Hits: 538, Misses: 2, Dials: 540}, "hit rate 99.6% (538 hits, 2 misses), 540 dials"},
	} {
		if got := poolSummary(tc.p); got != tc.want {
			t.Errorf("poolSummary(%+v): got %q; want %q", tc.p, got, tc.want)
		}
	}
	if got, want := totals(session.Totals{Connections: 1}, pool.Stats{}), "1 connection (0 failed), up 0 B, down 0 B; pool hit rate - (0 hits, 0 misses)"; got != want {
		t.Errorf("totals: got %q; want %q", got, want)
	}
	s := fakeSession(5000)
	rows := pickRows(s.Connections)
	if len(rows) != summaryRows {
		t.Fatalf("rows of 5000 connections: got %d; want %d", len(rows), summaryRows)
	}
	bad := 0
	for i, r := range rows {
		if badEnd(r) {
			bad++
		}
		if i > 0 && rows[i-1].ID >= r.ID {
			t.Errorf("rows out of ID order: %d before %d", rows[i-1].ID, r.ID)
		}
	}
	if last := rows[len(rows)-1].ID; last != 5000 || bad < notableRows {
		t.Errorf("rows: last ID %d, %d that ended badly; want 5000 and at least %d", last, bad, notableRows)
	}
}
