package main

import (
	"math"
	"strings"
	"testing"
)

func sampleTable() *table {
	t := &table{title: "Bulk", headers: []string{"peer", "MiB/s", "vs direct", "CPU µs/conn"}}
	t.addRow("direct", "4512", "1.00x", "-")
	t.addRow("systemd-socket-proxyd", "980", "0.22x", "12.5")
	t.notes = []string{"socat: 1 measurement(s) failed"}
	return t
}

func TestTablePlain(t *testing.T) {
	want := "" +
		"Bulk\n" +
		"peer                   MiB/s  vs direct  CPU µs/conn\n" +
		"---------------------  -----  ---------  -----------\n" +
		"direct                  4512      1.00x            -\n" +
		"systemd-socket-proxyd    980      0.22x         12.5\n" +
		"  socat: 1 measurement(s) failed\n"
	if got := sampleTable().plain(); got != want {
		t.Errorf("plain() =\n%s\nwant\n%s", got, want)
	}
}

func TestTableMarkdown(t *testing.T) {
	want := "" +
		"**Bulk**\n\n" +
		"| peer                  | MiB/s | vs direct | CPU µs/conn |\n" +
		"| :-------------------- | ----: | --------: | ----------: |\n" +
		"| direct                |  4512 |     1.00x |           - |\n" +
		"| systemd-socket-proxyd |   980 |     0.22x |        12.5 |\n" +
		"\n- socat: 1 measurement(s) failed\n"
	if got := sampleTable().markdown(); got != want {
		t.Errorf("markdown() =\n%s\nwant\n%s", got, want)
	}
}

func TestTableMarkdownEscapesPipes(t *testing.T) {
	tb := &table{headers: []string{"peer", "x"}}
	tb.addRow("a|b", "1")
	if got := tb.markdown(); !strings.Contains(got, `a\|b`) {
		t.Errorf("markdown() = %q; want the pipe in a cell escaped", got)
	}
}

func TestNumAndRatio(t *testing.T) {
	tests := []struct{ got, want string }{
		{num(1234.567, 0), "1235"},
		{num(0.5, 2), "0.50"},
		{num(math.NaN(), 1), "-"},
		{ratio(50, 100), "0.50x"},
		{ratio(1, 0), "-"},
		{ratio(math.NaN(), 3), "-"},
		{hitRate(199, 1), "199/200 (100%)"},
		{hitRate(0, 0), "-"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q; want %q", tt.got, tt.want)
		}
	}
}

func TestResultsTables(t *testing.T) {
	r := newResults()
	for _, v := range []float64{100, 300, 200} {
		r.add(testBulk, directName, map[string]float64{mMiBps: v})
		r.add(testBulk, "socat", map[string]float64{mMiBps: v / 2, mCPUPct: 50, mCPUPerGiB: 0.25})
	}
	r.fail(testBulk, "socat", errTest("boom"))
	ts := r.tables(runInfo{rounds: 3}, map[string][]string{testBulk: {directName, "socat"}})
	if len(ts) != 1 {
		t.Fatalf("got %d tables; want 1", len(ts))
	}
	got := ts[0].rows
	want := [][]string{{"direct", "200", "1.00x", "-", "-", "-"}, {"socat", "100", "0.50x", "50", "0.250", "-"}}
	for i := range want {
		if strings.Join(got[i], ",") != strings.Join(want[i], ",") {
			t.Errorf("row %d = %v; want %v", i, got[i], want[i])
		}
	}
	if len(ts[0].notes) != 1 || !strings.Contains(ts[0].notes[0], "boom") {
		t.Errorf("notes = %v; want the failure", ts[0].notes)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
