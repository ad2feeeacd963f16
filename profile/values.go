package profile

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// kind is the TOML type a flag's key takes.
type kind int

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindBool
	kindDuration
)

// flagInfo is one flag of the table as a profile key.
type flagInfo struct {
	name        string // the long name, which is the key
	flag        cli.Flag
	kind        kind // of the value, or of each element when list
	list        bool // repeatable: an array gives one Set per element
	processWide bool
}

// table is the flag table seen as profile keys.
type table struct {
	flags   []cli.Flag // in the order given, to Apply
	byName  map[string]*flagInfo
	aliases map[string]string // short name -> long name
}

func newTable(flags []cli.Flag, processWide map[string]bool) (*table, error) {
	t := &table{byName: map[string]*flagInfo{}, aliases: map[string]string{}}
	seen := map[string]bool{}
	for _, f := range flags {
		// cli adds these to a command's flags itself; they are no keys.
		if f == nil || len(f.Names()) == 0 || f == cli.HelpFlag || f == cli.VersionFlag || f == cli.BashCompletionFlag || f.Names()[0] == "help" {
			continue
		}
		for _, n := range f.Names() {
			if seen[n] { // flag.FlagSet would panic on it
				return nil, fmt.Errorf("profile: flag %q is in the flag table twice", n)
			}
			seen[n] = true
		}
		t.flags = append(t.flags, f)
	}
	probe, err := t.newSet()
	if err != nil {
		return nil, err
	}
	other, err := t.newSet()
	if err != nil {
		return nil, err
	}
	for _, f := range t.flags {
		names := f.Names()
		name := names[0]
		if shared(probe.Lookup(name).Value, other.Lookup(name).Value) {
			return nil, fmt.Errorf("profile: flag %q keeps its value outside the flag set (a Destination, or a GenericFlag's Value), so every forward would share one value: make its Apply create a fresh value", name)
		}
		fi := &flagInfo{name: name, flag: f, processWide: processWide[name]}
		fi.kind, fi.list = kindOf(f, probe.Lookup(name).Value)
		t.byName[name] = fi
		for _, alias := range names[1:] {
			t.aliases[alias] = name
		}
	}
	return t, nil
}

// newSet is a flag set holding every flag at its default, as the command
// line starts. A flag with a Destination would be shared by every set.
func (t *table) newSet() (*flag.FlagSet, error) {
	set := flag.NewFlagSet("warmport", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range t.flags {
		if err := f.Apply(set); err != nil {
			return nil, fmt.Errorf("profile: %v", err)
		}
	}
	return set, nil
}

// shared tells whether two flag sets hold one value for a flag.
func shared(a, b flag.Value) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Kind() == reflect.Pointer && vb.Kind() == reflect.Pointer && va.Pointer() == vb.Pointer()
}

// kindOf reads the kind from the value the flag package holds, so flag
// types other than cli's (a bounded int, a choice) work by what they hold.
func kindOf(f cli.Flag, v flag.Value) (kind, bool) {
	if g, ok := v.(flag.Getter); ok {
		switch g.Get().(type) {
		case int, int64, uint, uint64:
			return kindInt, false
		case float64:
			return kindFloat, false
		case bool:
			return kindBool, false
		case time.Duration:
			return kindDuration, false
		case string:
			return kindString, false
		case cli.StringSlice:
			return kindString, true
		case cli.IntSlice, cli.Int64Slice, cli.UintSlice, cli.Uint64Slice:
			return kindInt, true
		case cli.Float64Slice:
			return kindFloat, true
		}
	}
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return kindBool, false
	}
	if s, ok := f.(interface{ IsSliceFlag() bool }); ok && s.IsSliceFlag() {
		return kindString, true
	}
	return kindString, false
}

// texts turns a TOML value into the text the command line would give the
// flag, one string per Set. bad says what is wrong, with elem the index of
// the offending array element or -1.
func (fi *flagInfo) texts(v any) (texts []string, elem int, bad string) {
	if arr, ok := v.([]any); ok && fi.list {
		for i, e := range arr {
			s, ok := scalarText(fi.kind, e)
			if !ok {
				return nil, i, fmt.Sprintf("%s[%d]: want %s, not %s", fi.name, i, fi.kind.want(), typeName(e))
			}
			texts = append(texts, s)
		}
		return texts, -1, ""
	}
	if s, ok := scalarText(fi.kind, v); ok {
		return []string{s}, -1, ""
	}
	if fi.list {
		return nil, -1, fmt.Sprintf("%s: want an array of %s such as %s = [%s], not %s", fi.name, fi.kind.plural(), fi.name, fi.kind.example(), typeName(v))
	}
	return nil, -1, fmt.Sprintf("%s: want %s such as %s = %s, not %s", fi.name, fi.kind.want(), fi.name, fi.kind.example(), typeName(v))
}

// scalarText is strict: a string is never read as a number or a bool, and
// a duration is a string with its unit, since a bare 30 could mean seconds
// or nanoseconds.
func scalarText(k kind, v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, k == kindString || k == kindDuration
	case int64:
		switch k {
		case kindInt, kindFloat:
			return strconv.FormatInt(v, 10), true
		}
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), k == kindFloat
	case bool:
		return strconv.FormatBool(v), k == kindBool
	}
	return "", false
}

func (k kind) want() string {
	return [...]string{kindString: "a string", kindInt: "an integer", kindFloat: "a number",
		kindBool: "true or false", kindDuration: "a duration in a string"}[k]
}

func (k kind) plural() string {
	return [...]string{kindString: "strings", kindInt: "integers", kindFloat: "numbers",
		kindBool: "booleans", kindDuration: "durations"}[k]
}

func (k kind) example() string {
	return [...]string{kindString: `"..."`, kindInt: "4", kindFloat: "1.5", kindBool: "true", kindDuration: `"30s"`}[k]
}

// typeName is the TOML type of a decoded value, as an error names it.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case toml.LocalDate:
		return "a date"
	case toml.LocalTime:
		return "a time"
	}
	return "a date-time"
}

// suggest names the key a typo most likely meant, or "".
func suggest(key string, known func(string) bool, names []string) string {
	if k := strings.ReplaceAll(key, "_", "-"); known(k) {
		return k // TOML habit: pool_ttl for pool-ttl
	}
	best, score := "", 0.85 // below this a suggestion is more noise than help
	for _, n := range names {
		if s := smetrics.JaroWinkler(key, n, 0.7, 4); s > score {
			best, score = n, s
		}
	}
	return best
}
