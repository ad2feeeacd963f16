package profile

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

const file = "w.toml"

type wantForward struct {
	name          string
	line          int
	local, remote string
	values        map[string]string // flag -> value; flags not named keep their defaults unchecked
	settings      []string          // keys Set, in order
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		top      map[string]string
		forwards []wantForward
	}{{
		name: "one forward, defaults",
		doc:  "[forward.db]\nlocal = \"5432\"\nremote = \"db:5432\"\n",
		forwards: []wantForward{{name: "db", line: 1, local: "5432", remote: "db:5432",
			values: map[string]string{"warm": "2", "pool-ttl": "1m30s", "allow": "", "reuse": ""}}},
	}, {
		name: "top-level keys are defaults; a table's own key replaces one, lists too",
		doc: `# the project's ports
warm = 4
pool-ttl = "30s"
allow = ["10.0.0.0/8"]
json = true
drain-timeout = "3s"

[forward.db]
local = "5432"
remote = "db.internal:5432"
warm = 1
allow = [
  "192.168.0.0/16",
  "127.0.0.1/32",
]

[forward.cache]
local = "127.0.0.1:6379"
remote = "cache.internal:6380"
tls = true
via = "deploy@bastion"
reuse = "redis"
identity = ["~/.ssh/a", "~/.ssh/b"]
`,
		top: map[string]string{"warm": "4", "json": "true", "drain-timeout": "3s", "pool-ttl": "30s"},
		forwards: []wantForward{{
			name: "db", line: 8, local: "5432", remote: "db.internal:5432",
			values:   map[string]string{"warm": "1", "pool-ttl": "30s", "allow": "192.168.0.0/16,127.0.0.1/32", "json": "false", "drain-timeout": "10s", "tls": "false"},
			settings: []string{"pool-ttl", "warm", "allow"},
		}, {
			name: "cache", line: 17, local: "127.0.0.1:6379", remote: "cache.internal:6380",
			values:   map[string]string{"warm": "4", "allow": "10.0.0.0/8", "tls": "true", "via": "deploy@bastion", "reuse": "redis", "identity": "~/.ssh/a,~/.ssh/b"},
			settings: []string{"warm", "pool-ttl", "allow", "tls", "via", "reuse", "identity"},
		}},
	}, {
		name: "file order, not alphabetical",
		doc:  "[forward.zeta]\nlocal = \"1\"\nremote = \"2\"\n[forward.alpha]\nlocal = \"3\"\nremote = \"4\"\n",
		forwards: []wantForward{
			{name: "zeta", line: 1, local: "1", remote: "2"},
			{name: "alpha", line: 4, local: "3", remote: "4"},
		},
	}, {
		name: "inline tables, and a bare port as an integer",
		doc:  "[forward]\ndb = { local = 5432, remote = \"db:5432\" }\ncache = { local = \"6379\", remote = 6380, warm = 0 }\n",
		forwards: []wantForward{
			{name: "db", line: 2, local: "5432", remote: "db:5432", values: map[string]string{"warm": "2"}},
			{name: "cache", line: 3, local: "6379", remote: "6380", values: map[string]string{"warm": "0"}},
		},
	}, {
		name: "dotted keys, names with - and _ and digits",
		doc:  "forward.api-1.local = \"unix:/tmp/api.sock\"\nforward.api-1.remote = \"8080\"\n[forward.\"db_2\"]\nlocal = \"0\"\nremote = \"[::1]:5432\"\n",
		forwards: []wantForward{
			{name: "api-1", line: 1, local: "unix:/tmp/api.sock", remote: "8080"},
			{name: "db_2", line: 3, local: "0", remote: "[::1]:5432"},
		},
	}, {
		name: "a repeatable flag takes one string as the command line does, commas included",
		doc:  "[forward.db]\nlocal = \"1\"\nremote = \"2\"\nallow = \"10.0.0.0/8,172.16.0.0/12\"\n",
		forwards: []wantForward{{name: "db", line: 1, local: "1", remote: "2",
			values: map[string]string{"allow": "10.0.0.0/8,172.16.0.0/12"}, settings: []string{"allow"}}},
	}, {
		name: "a TOML integer in any base becomes the command line's decimal",
		doc:  "[forward.db]\nlocal = \"1\"\nremote = \"2\"\nmax-conns = 0x10\n",
		forwards: []wantForward{{name: "db", line: 1, local: "1", remote: "2",
			values: map[string]string{"max-conns": "16"}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WARMPORT_STATE_DIR", "")
			p, err := Parse(file, []byte(tt.doc), testFlags(), testProcessWide)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for k, want := range tt.top {
				if got := value(p.Top, k); got != want {
					t.Errorf("top %s = %q; want %q", k, got, want)
				}
			}
			if got, want := len(p.Forwards), len(tt.forwards); got != want {
				t.Fatalf("got %d forwards %v; want %d", got, p.Names(), want)
			}
			for i, w := range tt.forwards {
				f := p.Forwards[i]
				if f.Name != w.name || f.Line != w.line || f.Local != w.local || f.Remote != w.remote {
					t.Errorf("forward %d = %q line %d %q -> %q; want %q line %d %q -> %q",
						i, f.Name, f.Line, f.Local, f.Remote, w.name, w.line, w.local, w.remote)
				}
				for k, want := range w.values {
					if got := value(f.Flags, k); got != want {
						t.Errorf("forward %s: %s = %q; want %q", f.Name, k, got, want)
					}
				}
				if w.settings != nil {
					var got []string
					for _, s := range f.Settings {
						got = append(got, s.Key)
					}
					if !slices.Equal(got, w.settings) {
						t.Errorf("forward %s: settings %v; want %v", f.Name, got, w.settings)
					}
				}
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	const db = "[forward.db]\nlocal = \"5432\"\nremote = \"db:5432\"\n" // lines 1-3
	tests := []struct {
		name, doc, want string
	}{
		// TOML itself
		{"syntax", "warm = \n" + db, "w.toml:1: unexpected character U+000A at start of value"},
		{"table twice", db + "[forward.db]\nwarm = 1\n", "w.toml:4: [forward.db] again: it is already defined on line 1; merge the two tables"},
		{"key twice", db + "local = \"1\"\n", "w.toml:4: key local is already defined"},
		{"not UTF-8", "via = \"\xff\"\n" + db, "w.toml:1: invalid UTF-8 character in basic string"},
		// keys
		{"unknown key, a typo", "wram = 4\n" + db, `w.toml:1: unknown key "wram"; did you mean warm?`},
		{"unknown key, _ for -", db + "pool_ttl = \"30s\"\n", `w.toml:4: unknown key "pool_ttl"; did you mean pool-ttl?`},
		{"unknown key", db + "colour = \"red\"\n", `w.toml:4: unknown key "colour": a key is local, remote or the long name of a flag of warmport forward (see warmport forward --help)`},
		{"a short name", "q = true\n" + db, `w.toml:1: unknown key "q": keys are long names; use quiet`},
		{"help is no key", "help = true\n" + db, `w.toml:1: unknown key "help": a key is local, remote or the long name of a flag of warmport forward (see warmport forward --help)`},
		{"process-wide key in a forward", db + "json = true\n", "w.toml:4: json is for the whole process: set it at the top of the file, before any table"},
		{"process-wide key not suggested in a forward", db + "jsn = true\n", `w.toml:4: unknown key "jsn": a key is local, remote or the long name of a flag of warmport forward (see warmport forward --help)`},
		{"local at the top", "local = \"1\"\n" + db, "w.toml:1: local belongs in a forward's table, as in [forward.db] local = ..."},
		// types
		{"string for an integer", db + "warm = \"4\"\n", "w.toml:4: warm: want an integer such as warm = 4, not a string"},
		{"integer for a duration", "pool-ttl = 30\n" + db, `w.toml:1: pool-ttl: want a duration in a string such as pool-ttl = "30s", not an integer`},
		{"string for a bool", db + "tls = \"yes\"\n", "w.toml:4: tls: want true or false such as tls = true, not a string"},
		{"integer for a string", db + "via = 22\n", `w.toml:4: via: want a string such as via = "...", not an integer`},
		{"float for an integer", db + "warm = 1.5\n", "w.toml:4: warm: want an integer such as warm = 4, not a float"},
		{"table for an integer", db + "[forward.db.warm]\n", "w.toml:4: warm: want an integer such as warm = 4, not a table"},
		{"date for a string", db + "via = 2026-01-02\n", `w.toml:4: via: want a string such as via = "...", not a date`},
		{"array for a single value", db + "via = [\"a\", \"b\"]\n", `w.toml:4: via: want a string such as via = "...", not an array`},
		{"bool for a list", db + "allow = true\n", `w.toml:4: allow: want an array of strings such as allow = ["..."], not a boolean`},
		{"bad element, on its own line", db + "allow = [\n  \"10.0.0.0/8\",\n  8,\n]\n", "w.toml:6: allow[1]: want a string, not an integer"},
		// values, as the command line says them
		{"bad duration", db + "pool-ttl = \"soon\"\n", `w.toml:4: invalid value "soon" for pool-ttl: parse error`},
		{"bad choice", db + "reuse = \"pg\"\n", `w.toml:4: invalid value "pg" for reuse: want one of http, redis`},
		{"out of the flag's bounds", db + "warm = -1\n", "w.toml:4: --warm -1: must be 0 or more"},
		{"integer too large for TOML", db + "max-conns = 9223372036854775808\n", "w.toml:4: decimal number is too large to fit in a 64-bit signed integer"},
		{"bad top-level value every forward overrides", "pool-ttl = \"x\"\n" + db + "pool-ttl = \"1s\"\n", `w.toml:1: invalid value "x" for pool-ttl: parse error`},
		{"bad top-level bound", "warm = -2\n" + db, "w.toml:1: --warm -2: must be 0 or more"},
		// forwards
		{"no local", "[forward.db]\nremote = \"2\"\n", `w.toml:1: [forward.db] has no local: add local = "PORT" (or "HOST:PORT", "unix:PATH"), where to listen`},
		{"no remote", "warm = 1\n\n[forward.db]\nlocal = \"2\"\n", `w.toml:3: [forward.db] has no remote: add remote = "HOST:PORT", where to forward to`},
		{"empty local", "[forward.db]\nlocal = \"\"\nremote = \"2\"\n", "w.toml:2: local is empty"},
		{"bool for local", "[forward.db]\nlocal = true\nremote = \"2\"\n", `w.toml:2: local: want a string such as local = "127.0.0.1:5432" (or a port number), not a boolean`},
		{"no forward", "warm = 4\n", `w.toml: no forward in it: add a table such as [forward.db] with local = "5432" and remote = "db.internal:5432"`},
		{"empty file", "", `w.toml: no forward in it: add a table such as [forward.db] with local = "5432" and remote = "db.internal:5432"`},
		{"empty [forward]", "warm = 1\n[forward]\n", "w.toml:2: [forward] has no forward in it: add tables such as [forward.db]"},
		{"forward is a value", "forward = 3\n", "w.toml:1: forward: want tables such as [forward.db], not an integer"},
		{"forward is an array of tables", "[[forward]]\nlocal = \"1\"\n", "w.toml:1: forward: want tables such as [forward.db], not an array"},
		{"a forward is a value", "[forward]\ndb = \"5432\"\n", `w.toml:2: forward.db: want a table with local and remote, such as [forward.db], not a string`},
		{"empty name", db + "[forward.\"\"]\nlocal = \"1\"\nremote = \"2\"\n", "w.toml:4: a forward needs a name, as in [forward.db]"},
		{"space in a name", db + "[forward.\"db main\"]\n", `w.toml:4: forward name "db main": use letters, digits, '-' and '_', starting with a letter or a digit (it becomes WARMPORT_<NAME>_ADDR)`},
		{"name starts with -", "[forward.-db]\n", `w.toml:1: forward name "-db": use letters, digits, '-' and '_', starting with a letter or a digit (it becomes WARMPORT_<NAME>_ADDR)`},
		{"name not ASCII", "[forward.\"d\u00e9j\u00e0\"]\n", "w.toml:1: forward name \"d\u00e9j\u00e0\": use letters, digits, '-' and '_', starting with a letter or a digit (it becomes WARMPORT_<NAME>_ADDR)"},
		{"names that collide", "[forward.db-main]\nlocal = \"1\"\nremote = \"2\"\n[forward.db_main]\nlocal = \"3\"\nremote = \"4\"\n", `w.toml:4: forwards "db_main" and "db-main" (line 1) both become WARMPORT_DB_MAIN_ADDR: rename one`},
		{"names that differ in case", db + "[forward.DB]\nlocal = \"3\"\nremote = \"4\"\n", `w.toml:4: forwards "DB" and "db" (line 1) both become WARMPORT_DB_ADDR: rename one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(file, []byte(tt.doc), testFlags(), testProcessWide)
			if err == nil {
				t.Fatalf("Parse gave %v; want error %q", p.Names(), tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("got %T; want *Error", err)
			}
		})
	}
}

func TestParseBadFlagTable(t *testing.T) {
	doc := []byte("[forward.db]\nlocal = \"1\"\nremote = \"2\"\n")
	tests := []struct {
		name  string
		flags []cli.Flag
		want  string
	}{
		{"GenericFlag shares its value", []cli.Flag{&cli.GenericFlag{Name: "reuse", Value: &choice{choices: []string{"http"}}}},
			`profile: flag "reuse" keeps its value outside the flag set (a Destination, or a GenericFlag's Value), so every forward would share one value: make its Apply create a fresh value`},
		{"Destination shares its value", []cli.Flag{&cli.IntFlag{Name: "warm", Destination: new(int)}},
			`profile: flag "warm" keeps its value outside the flag set (a Destination, or a GenericFlag's Value), so every forward would share one value: make its Apply create a fresh value`},
		{"a name twice", []cli.Flag{&cli.IntFlag{Name: "warm"}, &cli.BoolFlag{Name: "json"}, &cli.IntFlag{Name: "warm"}},
			`profile: flag "warm" is in the flag table twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(file, doc, tt.flags, nil)
			if err == nil {
				t.Fatalf("Parse: nil error; want %q", tt.want)
			}
			if got := err.Error(); !strings.Contains(got, tt.want) {
				t.Errorf("got %s; want it to contain %s", got, tt.want)
			}
			var pe *Error
			if errors.As(err, &pe) {
				t.Errorf("got *Error %v; want a plain error: the mistake is in the flag table, not the file", err)
			}
		})
	}
}
