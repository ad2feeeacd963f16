package profile

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// testFlags mirrors forward's flags at the time of writing, plus flags of
// the kinds the TLS, SSH and operations issues add: a bool (tls), strings
// (via), repeatable strings (allow, identity) and a choice (reuse).
func testFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "warm", Value: 2, Action: func(_ *cli.Context, n int) error {
			if n < 0 {
				return fmt.Errorf("--warm %d: must be 0 or more", n)
			}
			return nil
		}},
		&cli.IntFlag{Name: "pool-max", Value: 8},
		&cli.DurationFlag{Name: "pool-ttl", Value: 90 * time.Second},
		&choiceFlag{name: "reuse", choices: []string{"http", "redis"}},
		&cli.IntFlag{Name: "max-conns"},
		&cli.DurationFlag{Name: "idle-timeout"},
		&cli.DurationFlag{Name: "dial-timeout", Value: 5 * time.Second},
		&cli.DurationFlag{Name: "exit-idle"},
		&cli.DurationFlag{Name: "drain-timeout", Value: 10 * time.Second},
		&cli.BoolFlag{Name: "json"},
		&cli.StringFlag{Name: "json-file"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"WARMPORT_STATE_DIR"}},
		&cli.BoolFlag{Name: "tls"},
		&cli.StringFlag{Name: "tls-server-name"},
		&cli.StringFlag{Name: "via"},
		&cli.StringSliceFlag{Name: "identity"},
		&cli.StringSliceFlag{Name: "allow"},
		cli.HelpFlag, // cli appends it to a command's flags; it is no key
	}
}

var testProcessWide = map[string]bool{
	"json": true, "json-file": true, "quiet": true, "state-dir": true, "drain-timeout": true, "exit-idle": true,
}

// choiceFlag is a flag whose Apply makes a fresh value for each flag set,
// as every per-forward flag must (cli's GenericFlag shares one value).
type choiceFlag struct {
	name    string
	choices []string
}

func (f *choiceFlag) String() string  { return "--" + f.name }
func (f *choiceFlag) Names() []string { return []string{f.name} }
func (f *choiceFlag) IsSet() bool     { return false }
func (f *choiceFlag) Apply(set *flag.FlagSet) error {
	set.Var(&choice{choices: f.choices}, f.name, "")
	return nil
}

type choice struct {
	choices []string
	v       string
}

func (c *choice) String() string { return c.v }
func (c *choice) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
	}
	c.v = s
	return nil
}

// value is a flag's value as text; a list joined by commas.
func value(set *flag.FlagSet, name string) string {
	f := set.Lookup(name)
	if f == nil {
		return "<no such flag>"
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if s, ok := g.Get().(cli.StringSlice); ok {
			return strings.Join(s.Value(), ",")
		}
	}
	return f.Value.String()
}
