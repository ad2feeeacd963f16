package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// summaryRows bounds the exit summary's table. Ten rows and the lines about
// the rest fit a 24-line terminal with the prompt; past about ten rows people
// stop reading rows and look for the totals. The JSON keeps every record.
const summaryRows = 10

// notableRows is how many of summaryRows may go to the most recent
// connections that ended badly (error, timeout, shutdown) when they are not
// among the most recent anyway: the rows a person came to look for.
const notableRows = 5

// writeSummary prints a session's summary: a header, a table of at most
// summaryRows connections, and, when the table cannot show them all, how the
// rest closed and where their upstreams came from, percentiles of duration
// and bytes, a histogram of durations and a sparkline of when connections
// started; then the totals. Times print in loc.
func writeSummary(w io.Writer, s *session.Summary, loc *time.Location) {
	// Wall clock, as the JSON's started and ended: the same text at exit and
	// from `stats ID`, whose times come back from JSON without a monotonic part.
	dur := s.Ended.Round(0).Sub(s.Started.Round(0))
	fmt.Fprintf(w, "%s %s -> %s, %s, started %s\n", bold("warmport session"), s.Local, s.Remote,
		humanDuration(dur), s.Started.In(loc).Format("2006-01-02 15:04:05"))
	recs := s.Connections
	shown := pickRows(recs)
	if len(shown) > 0 {
		t := &table{cols: []column{{"ID", true}, {"CLIENT", false}, {"SOURCE", false}, {"DIAL", true},
			{"DURATION", true}, {"UP", true}, {"DOWN", true}, {"CLOSED BY", false}}}
		for _, r := range shown {
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
	if rest := s.Totals.Connections - uint64(len(shown)); rest > 0 && len(shown) > 0 {
		fmt.Fprintf(w, "  %s\n", dim(fmt.Sprintf("%s not listed: the table shows the latest, and the latest that ended badly",
			plural(rest, "connection", "connections"))))
	}
	if len(recs) > len(shown) {
		writeAggregates(w, s, recs)
	}
	fmt.Fprintf(w, "%s %s\n", bold("total:"), totals(s.Totals, s.Pool))
}

// pickRows chooses the table's rows: the most recent connections that ended
// badly (up to notableRows), then the most recent, summaryRows in all, in
// ID order.
func pickRows(recs []session.Record) []session.Record {
	if len(recs) <= summaryRows {
		return recs
	}
	recent := recs[len(recs)-summaryRows:]
	var notable []session.Record
	for i := len(recs) - summaryRows - 1; i >= 0 && len(notable) < notableRows; i-- {
		if badEnd(recs[i]) {
			notable = append(notable, recs[i])
		}
	}
	slices.Reverse(notable)
	return append(notable, recent[len(notable):]...)
}

func badEnd(r session.Record) bool {
	return r.ClosedBy == session.ClosedByError || r.ClosedBy == session.ClosedByTimeout || r.ClosedBy == session.ClosedByShutdown
}

// writeAggregates prints what the table could not show, from the records
// the session kept (the last DefaultMaxRecords; the totals count all).
func writeAggregates(w io.Writer, s *session.Summary, recs []session.Record) {
	of := ""
	if s.Dropped > 0 {
		of = dim(fmt.Sprintf(" (of the last %d)", len(recs)))
	}
	label := func(l string) string { return bold(fmt.Sprintf("%-10s", l)) }

	closed := map[string]int{}
	sources := map[string]int{}
	durs := make([]float64, len(recs))
	ups := make([]float64, len(recs))
	downs := make([]float64, len(recs))
	for i, r := range recs {
		closed[r.ClosedBy]++
		sources[r.Source]++
		durs[i], ups[i], downs[i] = r.DurationMS, float64(r.BytesUp), float64(r.BytesDown)
	}
	var cs, ss []string
	for _, k := range []string{session.ClosedByClient, session.ClosedByRemote, session.ClosedByTimeout, session.ClosedByShutdown, session.ClosedByError} {
		if n := closed[k]; n > 0 {
			cs = append(cs, closedColor(k)(fmt.Sprintf("%d %s", n, k)))
		}
	}
	for _, k := range []string{pool.Warm.String(), pool.Reused.String(), pool.Cold.String()} {
		if n := sources[k]; n > 0 {
			ss = append(ss, sourceColor(k)(fmt.Sprintf("%d %s", n, k)))
		}
	}
	fmt.Fprintf(w, "%s %s%s\n", label("closed by"), strings.Join(cs, ", "), of)
	fmt.Fprintf(w, "%s %s%s\n", label("source"), strings.Join(ss, ", "), of)
	fmt.Fprintf(w, "%s %s\n", label("duration"), quantiles(durs, fmtMS))
	fmt.Fprintf(w, "%s %s\n", label("up"), quantiles(ups, func(v float64) string { return humanBytes(int64(v)) }))
	fmt.Fprintf(w, "%s %s\n", label("down"), quantiles(downs, func(v float64) string { return humanBytes(int64(v)) }))
	for i, line := range durationHistogram(durs) {
		l := ""
		if i == 0 {
			l = "durations"
		}
		fmt.Fprintf(w, "%s %s\n", label(l), line)
	}
	if line := startSparkline(recs, s.Started.Round(0), s.Ended.Round(0)); line != "" {
		fmt.Fprintf(w, "%s %s\n", label("started"), line)
	}
}

// quantiles is "p50 X  p90 X  p99 X  max X" of vs (nearest rank).
func quantiles(vs []float64, f func(float64) string) string {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	q := func(p int) float64 { return sorted[max((len(sorted)*p+99)/100-1, 0)] }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", f(q(50)), f(q(90)), f(q(99)), f(sorted[len(sorted)-1]))
}

// durationBuckets are the histogram's upper edges in ms, a decade each: a
// connection's duration spans microseconds (a refused request) to hours (a
// database session), so only a log scale shows both.
var durationBuckets = []struct {
	upTo  float64
	label string
}{{1, "<1ms"}, {10, "<10ms"}, {100, "<100ms"}, {1e3, "<1s"}, {1e4, "<10s"}, {6e4, "<1m"}, {6e5, "<10m"}, {math.Inf(1), "≥10m"}}

// histogramWidth is the longest bar, in cells.
const histogramWidth = 30

// durationHistogram draws one bar per duration decade, from the shortest
// occupied one to the longest.
func durationHistogram(durs []float64) []string {
	counts := make([]int, len(durationBuckets))
	for _, d := range durs {
		for i, b := range durationBuckets {
			if d < b.upTo {
				counts[i]++
				break
			}
		}
	}
	lo := slices.IndexFunc(counts, func(n int) bool { return n > 0 })
	hi := len(counts) - 1
	for counts[hi] == 0 {
		hi--
	}
	top := slices.Max(counts)
	var out []string
	for i := lo; i <= hi; i++ {
		b := bar(counts[i], top, histogramWidth)
		pad := strings.Repeat(" ", histogramWidth-utf8.RuneCountInString(b))
		out = append(out, fmt.Sprintf("%-6s %s%s %d", durationBuckets[i].label, cyan(b), pad, counts[i]))
	}
	return out
}

// bar is n of top drawn in at most width cells, eighths of a cell included,
// and never empty for n > 0.
func bar(n, top, width int) string {
	eighths := int(math.Round(float64(n) / float64(top) * float64(width*8)))
	if n > 0 && eighths == 0 {
		eighths = 1
	}
	s := strings.Repeat("█", eighths/8)
	if r := eighths % 8; r > 0 {
		s += string([]rune("▏▎▍▌▋▊▉")[r-1])
	}
	return s
}

// sparkCells is the sparkline's width.
const sparkCells = 40

// startSparkline draws how many connections started in each of sparkCells
// equal slices of the time the records cover, scaled to the busiest slice.
func startSparkline(recs []session.Record, started, ended time.Time) string {
	from := recs[0].Started.Round(0)
	if from.Before(started) {
		from = started
	}
	span := ended.Sub(from)
	if span <= 0 {
		return ""
	}
	counts := make([]int, sparkCells)
	for _, r := range recs {
		i := int(float64(r.Started.Round(0).Sub(from)) / float64(span) * sparkCells)
		counts[min(max(i, 0), sparkCells-1)]++
	}
	top := slices.Max(counts)
	levels := []rune(" ▁▂▃▄▅▆▇█")
	var b strings.Builder
	for _, n := range counts {
		l := 0
		if n > 0 {
			l = 1 + int(float64(n)/float64(top)*7+0.5)
		}
		b.WriteRune(levels[min(l, 8)])
	}
	per := span / sparkCells
	return fmt.Sprintf("%s %s", cyan("▕"+b.String()+"▏"), dim(fmt.Sprintf("connections started per %s, at most %d", humanDuration(per), top)))
}

// totals is the summary's last line: counts, bytes and the pool.
func totals(t session.Totals, p pool.Stats) string {
	failed := fmt.Sprintf("%d failed", t.Failed)
	if t.Failed > 0 {
		failed = red(failed)
	}
	if t.Denied > 0 { // only with --allow, and then it says something
		failed += ", " + yellow(fmt.Sprintf("%d denied", t.Denied))
	}
	return fmt.Sprintf("%s (%s), up %s, down %s; pool %s",
		plural(t.Connections, "connection", "connections"), failed, humanBytes(t.BytesUp), humanBytes(t.BytesDown), poolSummary(p))
}

func poolSummary(p pool.Stats) string {
	s := fmt.Sprintf("hit rate %s (%s, %s)", hitRatePaint(p)(percent(p.Hits, p.Hits+p.Misses)),
		plural(p.Hits, "hit", "hits"), plural(p.Misses, "miss", "misses"))
	for _, c := range []struct {
		n    uint64
		name string
	}{{p.Stale, "stale"}, {p.Evicted, "evicted"}, {p.Expired, "expired"}, {p.Reused, "reused"}} {
		if c.n > 0 {
			s += fmt.Sprintf(", %d %s", c.n, c.name)
		}
	}
	if p.Dials > 0 {
		s += ", " + plural(p.Dials, "dial", "dials")
	}
	return s
}

// percent is n of total as a percentage that never rounds to a claim the
// counts deny: 100% only when n is total, 0% only when n is 0; "-" of none.
func percent(n, total uint64) string {
	if total == 0 {
		return "-"
	}
	return ratePercent(float64(n) / float64(total))
}

// ratePercent is a rate in [0, 1] as percent prints it: 100% only for 1, 0%
// only for 0.
func ratePercent(r float64) string {
	p := r * 100
	switch {
	case r < 1 && p >= 99.5:
		return fmt.Sprintf("%.1f%%", math.Floor(p*10)/10) // 99.96 is 99.9, never 100.0
	case r > 0 && p < 0.5:
		return "<1%"
	}
	return fmt.Sprintf("%.0f%%", p)
}

// plural is "1 connection", "2 connections", "0 connections".
func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
