// Package profile reads the profile `warmport up` runs (warmport.toml): the
// top-level keys are defaults for every forward, and each [forward.NAME]
// table is one forward, with local, remote and any flag of `warmport
// forward` by its long name.
//
// The keys are not a list of their own: they come from forward's flag
// table, and every value goes through the flag's own Set as if it had been
// typed on the command line. A new flag is a new key without a line here,
// and a bad value gets the command line's error, after FILE:LINE.
package profile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"
)

// Error is a mistake in a profile. Line is 0 when no one line holds it.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Setting is one key as the command line would have given it.
type Setting struct {
	Key    string   // the flag's long name
	Values []string // the flag's text, one Set each (several for an array)
	Line   int      // of the key
	lines  []int    // of each value: an array's elements may span lines
}

// Profile is a parsed profile.
type Profile struct {
	File string
	// Top holds every flag: its default, then the top-level keys. The
	// process-wide flags are read here; the forwards have their own sets.
	Top         *flag.FlagSet
	TopSettings []Setting  // the top-level keys, in file order
	Forwards    []*Forward // in file order
}

// Forward is one [forward.NAME] table.
type Forward struct {
	Name          string
	Line          int // of its [forward.NAME] header
	Local, Remote string
	// Flags holds every flag: its default, then the top-level keys that are
	// not process-wide and that the table does not set itself, then the
	// table's own keys. Process-wide flags stay at their defaults.
	Flags    *flag.FlagSet
	Settings []Setting // what was Set on Flags, in that order

	file  string
	lines map[string]int // local, remote and each setting's key -> line
}

// Errorf is an error at the line of key (local, remote or a flag's long
// name, in this table or inherited from the top), else at the table's
// header: for mistakes found after parsing, such as two flags that
// contradict each other.
func (f *Forward) Errorf(key, format string, a ...any) error {
	line, ok := f.lines[key]
	if !ok {
		line = f.Line
	}
	return &Error{File: f.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

// Parse reads a profile. flags is forward's flag table; processWide names
// the flags that only the top level may set. The error is an *Error for a
// mistake in data; any other error is a mistake in flags.
func Parse(file string, data []byte, flags []cli.Flag, processWide map[string]bool) (*Profile, error) {
	t, err := newTable(flags, processWide)
	if err != nil {
		return nil, err
	}
	pr := &parser{file: file, t: t, ps: scanPositions(data)}
	var doc map[string]any
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, pr.decodeError(err)
	}
	return pr.profile(doc)
}

type parser struct {
	file string
	t    *table
	ps   *positions
}

func (pr *parser) errAt(line int, format string, a ...any) *Error {
	return &Error{File: pr.file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

func (pr *parser) decodeError(err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: pr.file, Msg: oneLine(err.Error())}
	}
	line, _ := de.Position()
	if d := pr.ps.dup; d != nil && pr.ps.lineAt(d.then) <= line {
		return pr.errAt(pr.ps.lineAt(d.then), "[%s] again: it is already defined on line %d; merge the two tables",
			tomlKey(d.path), pr.ps.lineAt(d.first))
	}
	return pr.errAt(line, "%s", oneLine(strings.TrimPrefix(de.Error(), "toml: ")))
}

func (pr *parser) profile(doc map[string]any) (*Profile, error) {
	p := &Profile{File: pr.file}
	var err error
	if p.Top, err = pr.t.newSet(); err != nil {
		return nil, err
	}
	var forwards any
	for _, k := range pr.order(nil, doc) {
		path := []string{k}
		switch k {
		case "forward":
			forwards = doc[k]
		case "local", "remote":
			return nil, pr.errAt(pr.ps.line(path), "%s belongs in a forward's table, as in [forward.db] %s = ...", k, k)
		default:
			s, err := pr.setting(path, doc[k], false)
			if err != nil {
				return nil, err
			}
			if err := pr.set(p.Top, s); err != nil {
				return nil, err
			}
			p.TopSettings = append(p.TopSettings, s)
		}
	}
	if err := pr.runActions(p.Top, p.TopSettings); err != nil {
		return nil, err
	}
	fwds, ok := forwards.(map[string]any)
	switch {
	case forwards == nil:
		return nil, &Error{File: pr.file, Msg: `no forward in it: add a table such as [forward.db] with local = "5432" and remote = "db.internal:5432"`}
	case !ok:
		return nil, pr.errAt(pr.ps.line([]string{"forward"}), "forward: want tables such as [forward.db], not %s", typeName(forwards))
	case len(fwds) == 0:
		return nil, pr.errAt(pr.ps.line([]string{"forward"}), "[forward] has no forward in it: add tables such as [forward.db]")
	}
	byEnv := map[string]*Forward{}
	for _, name := range pr.order([]string{"forward"}, fwds) {
		line := pr.ps.line([]string{"forward", name})
		if msg := checkName(name); msg != "" {
			return nil, pr.errAt(line, "%s", msg)
		}
		env := EnvName(name)
		if other, ok := byEnv[env]; ok {
			return nil, pr.errAt(line, "forwards %q and %q (line %d) both become WARMPORT_%s_ADDR: rename one", name, other.Name, other.Line, env)
		}
		fw, err := pr.forward(name, line, fwds[name], p.TopSettings)
		if err != nil {
			return nil, err
		}
		byEnv[env] = fw
		p.Forwards = append(p.Forwards, fw)
	}
	return p, nil
}

func (pr *parser) forward(name string, line int, v any, top []Setting) (*Forward, error) {
	path := []string{"forward", name}
	tbl, ok := v.(map[string]any)
	if !ok {
		return nil, pr.errAt(line, "forward.%s: want a table with local and remote, such as [forward.%s], not %s", tomlKey([]string{name}), tomlKey([]string{name}), typeName(v))
	}
	fw := &Forward{Name: name, Line: line, file: pr.file, lines: map[string]int{}}
	var own []Setting
	for _, k := range pr.order(path, tbl) {
		kp := append(slices.Clone(path), k)
		switch k {
		case "local", "remote":
			addr, err := pr.address(kp, tbl[k])
			if err != nil {
				return nil, err
			}
			if k == "local" {
				fw.Local = addr
			} else {
				fw.Remote = addr
			}
			fw.lines[k] = pr.ps.line(kp)
		default:
			s, err := pr.setting(kp, tbl[k], true)
			if err != nil {
				return nil, err
			}
			own = append(own, s)
		}
	}
	if fw.Local == "" {
		return nil, pr.errAt(line, `[forward.%s] has no local: add local = "PORT" (or "HOST:PORT", "unix:PATH"), where to listen`, tomlKey([]string{name}))
	}
	if fw.Remote == "" {
		return nil, pr.errAt(line, `[forward.%s] has no remote: add remote = "HOST:PORT", where to forward to`, tomlKey([]string{name}))
	}
	for _, s := range top {
		if !pr.t.byName[s.Key].processWide && !slices.ContainsFunc(own, func(o Setting) bool { return o.Key == s.Key }) {
			fw.Settings = append(fw.Settings, s)
		}
	}
	fw.Settings = append(fw.Settings, own...)
	var err error
	if fw.Flags, err = pr.t.newSet(); err != nil {
		return nil, err
	}
	for _, s := range fw.Settings {
		if err := pr.set(fw.Flags, s); err != nil {
			return nil, err
		}
		fw.lines[s.Key] = s.Line
	}
	if err := pr.runActions(fw.Flags, fw.Settings); err != nil {
		return nil, err
	}
	return fw, nil
}

// address is local or remote: a string, or a bare port as an integer.
func (pr *parser) address(path []string, v any) (string, error) {
	key, line := path[len(path)-1], pr.ps.line(path)
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", pr.errAt(line, "%s is empty", key)
		}
		return v, nil
	case int64:
		return fmt.Sprint(v), nil
	}
	return "", pr.errAt(line, `%s: want a string such as %s = "127.0.0.1:5432" (or a port number), not %s`, key, key, typeName(v))
}

// setting checks one flag key and turns its value into the flag's text.
func (pr *parser) setting(path []string, v any, inForward bool) (Setting, error) {
	key, line := path[len(path)-1], pr.ps.line(path)
	fi, ok := pr.t.byName[key]
	if !ok {
		return Setting{}, pr.unknown(key, line, inForward)
	}
	if inForward && fi.processWide {
		return Setting{}, pr.errAt(line, "%s is for the whole process: set it at the top of the file, before any table", key)
	}
	texts, elem, bad := fi.texts(v)
	if bad != "" {
		if elem >= 0 {
			line = pr.ps.elemLine(path, elem)
		}
		return Setting{}, pr.errAt(line, "%s", bad)
	}
	s := Setting{Key: key, Values: texts, Line: line}
	for i := range texts {
		l := line
		if fi.list && isArray(v) {
			l = pr.ps.elemLine(path, i)
		}
		s.lines = append(s.lines, l)
	}
	return s, nil
}

func isArray(v any) bool {
	_, ok := v.([]any)
	return ok
}

func (pr *parser) unknown(key string, line int, inForward bool) error {
	if long, ok := pr.t.aliases[key]; ok {
		return pr.errAt(line, "unknown key %q: keys are long names; use %s", key, long)
	}
	var names []string
	if inForward {
		names = append(names, "local", "remote")
	}
	for _, f := range pr.t.flags {
		if n := f.Names()[0]; !inForward || !pr.t.byName[n].processWide {
			names = append(names, n)
		}
	}
	if s := suggest(key, func(k string) bool { return slices.Contains(names, k) }, names); s != "" {
		return pr.errAt(line, "unknown key %q; did you mean %s?", key, s)
	}
	return pr.errAt(line, "unknown key %q: a key is local, remote or the long name of a flag of warmport forward (see warmport forward --help)", key)
}

// set gives the flag each value as the command line would, with its error.
func (pr *parser) set(set *flag.FlagSet, s Setting) error {
	for i, v := range s.Values {
		if err := set.Set(s.Key, v); err != nil {
			return pr.errAt(s.lines[i], "invalid value %q for %s: %v", v, s.Key, err)
		}
	}
	return nil
}

// runActions runs the Action of each flag set, as cli does after parsing a
// command line, so bounds checked there hold in a profile too.
func (pr *parser) runActions(set *flag.FlagSet, settings []Setting) error {
	ctx := cli.NewContext(&cli.App{Name: "warmport", Writer: io.Discard, ErrWriter: io.Discard}, set, nil)
	for _, s := range settings {
		if af, ok := pr.t.byName[s.Key].flag.(cli.ActionableFlag); ok {
			if err := af.RunAction(ctx); err != nil {
				return pr.errAt(s.Line, "%s", oneLine(err.Error()))
			}
		}
	}
	return nil
}

// order is m's keys in file order.
func (pr *parser) order(prefix []string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	off := func(k string) int { return pr.ps.offset(append(slices.Clone(prefix), k)) }
	slices.SortFunc(keys, func(a, b string) int {
		if d := off(a) - off(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

// checkName says what is wrong with a forward's name, or "". A name is what
// TOML allows unquoted, so that it reads the same in the file, on the
// command line and in WARMPORT_<NAME>_ADDR.
func checkName(name string) string {
	if name == "" {
		return "a forward needs a name, as in [forward.db]"
	}
	for i, r := range name {
		if !isAlnum(r) && (i == 0 || (r != '-' && r != '_')) {
			return fmt.Sprintf("forward name %q: use letters, digits, '-' and '_', starting with a letter or a digit (it becomes WARMPORT_<NAME>_ADDR)", name)
		}
	}
	return ""
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// EnvName is NAME of WARMPORT_<NAME>_ADDR and WARMPORT_<NAME>_PORT for the
// forward name: upper-cased, every character outside A-Z0-9 turned into _.
func EnvName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case isAlnum(r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Names are the forwards' names in file order.
func (p *Profile) Names() []string {
	names := make([]string, len(p.Forwards))
	for i, f := range p.Forwards {
		names[i] = f.Name
	}
	return names
}

// Select keeps only the named forwards, in file order; an unknown name is
// an error and leaves p as it was. No names keeps every forward.
func (p *Profile) Select(names []string) error {
	if len(names) == 0 {
		return nil
	}
	all := p.Names()
	for _, n := range names {
		if !slices.Contains(all, n) {
			return &Error{File: p.File, Msg: fmt.Sprintf("no forward %q in it; its forwards are %s", n, strings.Join(all, ", "))}
		}
	}
	p.Forwards = slices.DeleteFunc(p.Forwards, func(f *Forward) bool { return !slices.Contains(names, f.Name) })
	return nil
}

// tomlKey writes a key path as TOML would, quoting parts that need it.
func tomlKey(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = p
		if p == "" || strings.IndexFunc(p, func(r rune) bool { return !isAlnum(r) && r != '-' && r != '_' }) >= 0 {
			parts[i] = fmt.Sprintf("%q", p)
		}
	}
	return strings.Join(parts, ".")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
