package profile

import (
	"fmt"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

const three = `warm = 3
[forward.db]
local = "5432"
remote = "db:5432"
[forward.cache]
local = "6379"
remote = "cache:6379"
warm = 1
[forward.api]
local = "8080"
remote = "api:80"
`

func parseThree(t *testing.T) *Profile {
	t.Helper()
	p, err := Parse(file, []byte(three), testFlags(), testProcessWide)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr string
	}{
		{"no names keeps all", nil, []string{"db", "cache", "api"}, ""},
		{"file order, not argument order", []string{"api", "db"}, []string{"db", "api"}, ""},
		{"a name twice", []string{"cache", "cache"}, []string{"cache"}, ""},
		{"unknown name", []string{"db", "redis"}, []string{"db", "cache", "api"}, `w.toml: no forward "redis" in it; its forwards are db, cache, api`},
		{"names are exact", []string{"DB"}, []string{"db", "cache", "api"}, `w.toml: no forward "DB" in it; its forwards are db, cache, api`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseThree(t)
			err := p.Select(tt.names)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("error %q; want %q", gotErr, tt.wantErr)
			}
			if got := p.Names(); !slices.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"db", "DB"},
		{"db-main", "DB_MAIN"},
		{"Cache_2", "CACHE_2"},
		{"a.b c", "A_B_C"},
		{"d\u00e9j\u00e0", "D_J_"}, // one _ per character, not per byte
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EnvName(tt.name); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestErrorf: a mistake found after parsing points at the key behind it,
// wherever the forward got it from.
func TestErrorf(t *testing.T) {
	p := parseThree(t)
	tests := []struct {
		fw, key, want string
	}{
		{"cache", "warm", "w.toml:8: bad"},   // its own key
		{"db", "warm", "w.toml:1: bad"},      // the top-level default
		{"db", "remote", "w.toml:4: bad"},    // local and remote too
		{"api", "pool-max", "w.toml:9: bad"}, // not set anywhere: the header
		{"api", "", "w.toml:9: bad"},         // no key: the header
		{"cache", "local", "w.toml:6: bad"},  // the forward's own local
		{"cache", "json", "w.toml:5: bad"},   // process-wide: not the forward's
		{"db", "drain-timeout", "w.toml:2: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.fw+" "+tt.key, func(t *testing.T) {
			i := slices.Index(p.Names(), tt.fw)
			if got := p.Forwards[i].Errorf(tt.key, "bad").Error(); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

// TestContext is how `up` reads a forward: cli's Context over its flag set,
// so the function that turns forward's flags into a Config serves both.
func TestContext(t *testing.T) {
	doc := "pool-ttl = \"45s\"\njson = true\n[forward.db]\nlocal = \"1\"\nremote = \"2\"\nallow = [\"10.0.0.0/8\", \"::1/128\"]\n"
	p, err := Parse(file, []byte(doc), testFlags(), testProcessWide)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := cli.NewContext(nil, p.Forwards[0].Flags, nil)
	if got, want := c.Int("warm"), 2; got != want {
		t.Errorf("warm = %d; want %d", got, want)
	}
	if got, want := c.Duration("pool-ttl").String(), "45s"; got != want {
		t.Errorf("pool-ttl = %s; want %s", got, want)
	}
	if got, want := c.StringSlice("allow"), []string{"10.0.0.0/8", "::1/128"}; !slices.Equal(got, want) {
		t.Errorf("allow = %v; want %v", got, want)
	}
	for name, want := range map[string]bool{"warm": false, "pool-ttl": true, "allow": true, "json": false} {
		if got := c.IsSet(name); got != want {
			t.Errorf("IsSet(%s) = %v; want %v", name, got, want)
		}
	}
	top := cli.NewContext(nil, p.Top, nil)
	if !top.Bool("json") || !top.IsSet("json") {
		t.Errorf("top json = %v, set %v; want true, set", top.Bool("json"), top.IsSet("json"))
	}
}

// TestEnvDefault: a flag's environment variable is its default in a profile
// as on the command line, and a key overrides it.
func TestEnvDefault(t *testing.T) {
	t.Setenv("WARMPORT_STATE_DIR", "/from/env")
	for _, tt := range []struct{ doc, want string }{
		{"[forward.db]\nlocal = \"1\"\nremote = \"2\"\n", "/from/env"},
		{"state-dir = \"/from/file\"\n[forward.db]\nlocal = \"1\"\nremote = \"2\"\n", "/from/file"},
	} {
		p, err := Parse(file, []byte(tt.doc), testFlags(), testProcessWide)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if got := value(p.Top, "state-dir"); got != tt.want {
			t.Errorf("state-dir = %q; want %q", got, tt.want)
		}
	}
}

// TestForwardsDoNotShare: each forward's values are its own.
func TestForwardsDoNotShare(t *testing.T) {
	doc := "[forward.a]\nlocal = \"1\"\nremote = \"2\"\nreuse = \"http\"\nallow = [\"10.0.0.0/8\"]\n" +
		"[forward.b]\nlocal = \"3\"\nremote = \"4\"\nreuse = \"redis\"\n"
	p, err := Parse(file, []byte(doc), testFlags(), testProcessWide)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for i, want := range []struct{ reuse, allow string }{{"http", "10.0.0.0/8"}, {"redis", ""}} {
		f := p.Forwards[i]
		if got := value(f.Flags, "reuse"); got != want.reuse {
			t.Errorf("%s reuse = %q; want %q", f.Name, got, want.reuse)
		}
		if got := value(f.Flags, "allow"); got != want.allow {
			t.Errorf("%s allow = %q; want %q", f.Name, got, want.allow)
		}
	}
}

// TestEmptyList: an empty array in a table sets nothing, so the flag falls
// back to its default rather than to the top-level list.
func TestEmptyList(t *testing.T) {
	doc := "allow = [\"10.0.0.0/8\"]\n[forward.db]\nlocal = \"1\"\nremote = \"2\"\nallow = []\n[forward.api]\nlocal = \"3\"\nremote = \"4\"\n"
	p, err := Parse(file, []byte(doc), testFlags(), testProcessWide)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for i, want := range []string{"", "10.0.0.0/8"} {
		if got := value(p.Forwards[i].Flags, "allow"); got != want {
			t.Errorf("%s allow = %q; want %q", p.Forwards[i].Name, got, want)
		}
	}
}

// TestOtherKinds: numbers and lists of integers, which no forward flag
// takes yet, follow the same rules.
func TestOtherKinds(t *testing.T) {
	flags := []cli.Flag{&cli.Float64Flag{Name: "ratio"}, &cli.IntSliceFlag{Name: "ports"}}
	tests := []struct{ doc, ratio, ports, wantErr string }{
		{"ratio = 0.25\nports = [80, 443]\n", "0.25", "[80 443]", ""},
		{"ratio = 2\nports = 8\n", "2", "[8]", ""},
		{"ratio = \"2\"\n", "", "", `w.toml:4: ratio: want a number such as ratio = 1.5, not a string`},
		{"ports = [\"80\"]\n", "", "", `w.toml:4: ports[0]: want an integer, not a string`},
		{"ports = \"80\"\n", "", "", `w.toml:4: ports: want an array of integers such as ports = [4], not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			p, err := Parse(file, []byte("[forward.db]\nlocal = \"1\"\nremote = \"2\"\n"+tt.doc), flags, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v; want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c := cli.NewContext(nil, p.Forwards[0].Flags, nil)
			if got := fmt.Sprint(c.Float64("ratio")); got != tt.ratio {
				t.Errorf("ratio = %s; want %s", got, tt.ratio)
			}
			if got := fmt.Sprint(c.IntSlice("ports")); got != tt.ports {
				t.Errorf("ports = %s; want %s", got, tt.ports)
			}
		})
	}
}
