package main

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fatih/color"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// Colors, shared by every table and line warmport prints. fatih/color checks
// color.NoColor (set in run from NO_COLOR and stderr) at print time.
var (
	bold   = color.New(color.Bold).SprintFunc()
	dim    = color.New(color.Faint).SprintFunc()
	green  = color.New(color.FgGreen).SprintFunc()
	yellow = color.New(color.FgYellow).SprintFunc()
	cyan   = color.New(color.FgCyan).SprintFunc()
	red    = color.New(color.FgRed).SprintFunc()
)

func sourceColor(s string) func(...any) string {
	switch s {
	case pool.Warm.String():
		return green
	case pool.Reused.String():
		return cyan
	}
	return yellow
}

func closedColor(s string) func(...any) string {
	switch s {
	case session.ClosedByError, session.ClosedByShutdown:
		return red
	case session.ClosedByTimeout:
		return yellow
	}
	return fmt.Sprint
}

// formatRecord is the one line printed as each connection closes.
func formatRecord(r session.Record) string {
	line := fmt.Sprintf("#%d %s %s %s in %s, up %s down %s, closed by %s",
		r.ID, r.Client, sourceColor(r.Source)(r.Source), fmtMS(r.DialMS), fmtMS(r.DurationMS),
		humanBytes(r.BytesUp), humanBytes(r.BytesDown), closedColor(r.ClosedBy)(r.ClosedBy))
	if r.Error != "" {
		line += ": " + red(r.Error)
	}
	return line
}

// column is one column of a table: a header and how wide it is.
type column struct {
	head  string
	right bool
}

// table prints rows aligned on plain-text widths, then colors cells, so
// escape codes never break the alignment.
type table struct {
	cols  []column
	rows  [][]string
	paint [][]func(...any) string
}

func (t *table) add(cells []string, paint []func(...any) string) {
	t.rows = append(t.rows, cells)
	t.paint = append(t.paint, paint)
}

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.cols))
	for i, c := range t.cols {
		width[i] = utf8.RuneCountInString(c.head)
	}
	for _, r := range t.rows {
		for i, cell := range r {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	line := func(cells []string, paint []func(...any) string) {
		var b strings.Builder
		b.WriteString("  ")
		for i, cell := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if paint != nil && paint[i] != nil {
				cell = paint[i](cell)
			}
			if t.cols[i].right {
				b.WriteString(pad + cell)
			} else if i < len(cells)-1 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(cell)
			}
			if i < len(cells)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	heads := make([]string, len(t.cols))
	hpaint := make([]func(...any) string, len(t.cols))
	for i, c := range t.cols {
		heads[i], hpaint[i] = c.head, bold
	}
	line(heads, hpaint)
	for i, r := range t.rows {
		line(r, t.paint[i])
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	}
	return humanDuration(time.Duration(ms * float64(time.Millisecond)))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
