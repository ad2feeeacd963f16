package main

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// table is one result table. The first column is a label (left-aligned), the
// others are numbers (right-aligned). It renders as plain aligned text for the
// terminal and as Markdown for the README.
type table struct {
	title   string
	headers []string
	rows    [][]string
	notes   []string // printed under the table
}

func (t *table) addRow(cells ...string) { t.rows = append(t.rows, cells) }

// widths returns the display width of every column (runes, not bytes: µ and
// × are two bytes each).
func (t *table) widths() []int {
	w := make([]int, len(t.headers))
	for i, h := range t.headers {
		w[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i := 0; i < len(r) && i < len(w); i++ {
			w[i] = max(w[i], utf8.RuneCountInString(r[i]))
		}
	}
	return w
}

// pad aligns s in a column of width w: left for the label column, right for
// the numbers.
func pad(s string, w, col int) string {
	fill := strings.Repeat(" ", max(0, w-utf8.RuneCountInString(s)))
	if col == 0 {
		return s + fill
	}
	return fill + s
}

// cell returns row r's column i, or "" when the row is short.
func cell(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

// plain renders the table as aligned text with two spaces between columns.
func (t *table) plain() string {
	w := t.widths()
	var b strings.Builder
	line := func(cells func(i int) string) {
		parts := make([]string, len(w))
		for i := range w {
			parts[i] = pad(cells(i), w[i], i)
		}
		b.WriteString(strings.TrimRight(strings.Join(parts, "  "), " ") + "\n")
	}
	if t.title != "" {
		b.WriteString(t.title + "\n")
	}
	line(func(i int) string { return t.headers[i] })
	line(func(i int) string { return strings.Repeat("-", w[i]) })
	for _, r := range t.rows {
		line(func(i int) string { return cell(r, i) })
	}
	for _, n := range t.notes {
		b.WriteString("  " + n + "\n")
	}
	return b.String()
}

// markdown renders the table as a GitHub-flavoured Markdown table, padded so
// the source is readable too, with the title as a bold caption.
func (t *table) markdown() string {
	w := t.widths()
	for i := range w {
		w[i] = max(w[i], 3) // a separator needs at least "---"
	}
	var b strings.Builder
	line := func(cells func(i int) string) {
		b.WriteString("|")
		for i := range w {
			b.WriteString(" " + pad(cells(i), w[i], i) + " |")
		}
		b.WriteString("\n")
	}
	if t.title != "" {
		b.WriteString("**" + t.title + "**\n\n")
	}
	line(func(i int) string { return t.headers[i] })
	line(func(i int) string {
		if i == 0 {
			return ":" + strings.Repeat("-", w[i]-1)
		}
		return strings.Repeat("-", w[i]-1) + ":"
	})
	for _, r := range t.rows {
		line(func(i int) string { return strings.ReplaceAll(cell(r, i), "|", `\|`) })
	}
	if len(t.notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// num formats v with the given decimals; NaN (not measured) becomes "-".
func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.*f", decimals, v)
}

// ratio formats v/base as "1.23x"; "-" when either is missing or base is 0.
func ratio(v, base float64) string {
	if math.IsNaN(v) || math.IsNaN(base) || base == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v/base)
}
