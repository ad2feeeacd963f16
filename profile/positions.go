package profile

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions knows where each key of a document is defined. The decoder
// gives values without positions, so the document is walked once more with
// go-toml's AST parser, which keeps the byte range of every key.
type positions struct {
	keys    map[string]int   // path -> offset of its first definition
	elems   map[string][]int // path of an array -> offset of each element
	headers map[string]int   // path of a [table] header -> its offset
	newline []int            // offsets of '\n', for offset -> line
	dup     *dupTable        // the first [table] header seen twice
}

// dupTable is a [table] header given twice, which TOML forbids. go-toml
// reports it too, but only by its last key ("table db already exists").
type dupTable struct {
	path        []string
	first, then int // offsets of the two headers
}

func pathKey(path []string) string {
	quoted := make([]string, len(path))
	for i, p := range path {
		quoted[i] = strconv.Quote(p)
	}
	return strings.Join(quoted, ".")
}

// scanPositions walks data up to its first syntax error; the decoder reports
// that error itself, with its position.
func scanPositions(data []byte) *positions {
	ps := &positions{keys: map[string]int{}, elems: map[string][]int{}, headers: map[string]int{}}
	for i, b := range data {
		if b == '\n' {
			ps.newline = append(ps.newline, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			path, off := keyPath(e.Key())
			if e.Kind == unstable.Table {
				k := pathKey(path)
				if first, ok := ps.headers[k]; ok && ps.dup == nil {
					ps.dup = &dupTable{path: path, first: first, then: off}
				}
				ps.headers[k] = off
			}
			ps.note(path, off)
			table = path
		case unstable.KeyValue:
			ps.keyValue(table, e)
		}
	}
	return ps
}

// keyPath returns a (maybe dotted) key's parts and the offset of its first.
func keyPath(it unstable.Iterator) ([]string, int) {
	var path []string
	off := -1
	for it.Next() {
		n := it.Node()
		if off < 0 {
			off = int(n.Raw.Offset)
		}
		path = append(path, string(n.Data))
	}
	return path, max(off, 0)
}

func (ps *positions) keyValue(table []string, kv *unstable.Node) {
	keys, off := keyPath(kv.Key())
	path := append(slices.Clone(table), keys...)
	ps.note(path, off)
	v := kv.Value()
	switch v.Kind {
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ps.keyValue(path, c)
			}
		}
	case unstable.Array:
		var offs []int
		for it := v.Children(); it.Next(); {
			o := off // nested arrays and tables carry no range of their own
			if r := it.Node().Raw; r.Length > 0 {
				o = int(r.Offset)
			}
			offs = append(offs, o)
		}
		ps.elems[pathKey(path)] = offs
	}
}

// note records path and its parents (dotted keys define them implicitly)
// where they were not defined before.
func (ps *positions) note(path []string, off int) {
	for i := 1; i <= len(path); i++ {
		k := pathKey(path[:i])
		if _, ok := ps.keys[k]; !ok {
			ps.keys[k] = off
		}
	}
}

// offset of path's first definition; -1 when the walk never saw it.
func (ps *positions) offset(path []string) int {
	if off, ok := ps.keys[pathKey(path)]; ok {
		return off
	}
	return -1
}

// line of path, or of its nearest parent the walk saw, or 1.
func (ps *positions) line(path []string) int {
	for i := len(path); i > 0; i-- {
		if off := ps.offset(path[:i]); off >= 0 {
			return ps.lineAt(off)
		}
	}
	return 1
}

// elemLine is the line of element i of the array at path.
func (ps *positions) elemLine(path []string, i int) int {
	if offs := ps.elems[pathKey(path)]; i < len(offs) {
		return ps.lineAt(offs[i])
	}
	return ps.line(path)
}

func (ps *positions) lineAt(off int) int {
	return sort.SearchInts(ps.newline, off) + 1
}
