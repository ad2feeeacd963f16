// Command warmport forwards a local TCP port to a remote address, keeps a few
// upstream connections pre-dialed so new clients skip the handshake, and
// prints a summary of every connection when it exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
)

// Exit statuses of the CLI contract.
const (
	exitOK      = 0
	exitRuntime = 1 // port in use, permission denied, ...
	exitUsage   = 2 // bad flag, bad address, flags after LOCAL REMOTE
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without os.Exit: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	color.NoColor = os.Getenv("NO_COLOR") != "" || !isTerminal(stderr)
	sigs := notifySignals()
	defer sigs.stop()
	ctx := context.WithValue(withSignals(context.Background(), sigs), argsKey{}, args)
	err := newApp(stdout, stderr).RunContext(ctx, args)
	return exitStatus(err, stderr)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "warmport",
		Usage: "an ad hoc TCP port forwarder with warm upstream connections",
		Description: "warmport forward listens on a local port and relays every connection to a remote address,\n" +
			"keeping a few upstream connections pre-dialed so a new client skips the handshake.\n" +
			"warmport up runs every forward of a profile (warmport.toml) in one process.\n" +
			"warmport stats shows running forwarders and recent sessions.",
		Version:        version(),
		Writer:         stdout,
		ErrWriter:      stderr,
		Commands:       []*cli.Command{forwardCommand, upCommand, statsCommand, benchCommand, completionCommand, profileNamesCommand}, // one file each: cmd_*.go
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the status; nothing calls os.Exit early
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("unknown command %q; run 'warmport --help' for the commands", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

func init() {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintf(c.App.Writer, "%s %s\n", c.App.Name, c.App.Version) }
}

// version is the module version and VCS revision the binary was built
// from, as `go version -m` shows them: "v1.2.0", or a pseudo-version
// "v0.0.0-20261201210000-21746fa1c2d3+dirty" from a git checkout, or
// "(devel)" where the go command stamped none (go run).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (revision %s%s)", rev, modified)
	}
	return v + " " + bi.GoVersion
}

type argsKey struct{}

// typedFlags returns the flags given to c's command as the user typed
// them, values included, so that a suggested command line keeps them.
func typedFlags(c *cli.Context) []string {
	args, _ := c.Context.Value(argsKey{}).([]string)
	pos := c.Args().Len()
	if len(args) < 2+pos || args[1] != c.Command.Name {
		return nil
	}
	typed := slices.Clone(args[2 : len(args)-pos])
	if n := len(typed); n > 0 && typed[n-1] == "--" {
		typed = typed[:n-1]
	}
	return typed
}

// usageErrorf is a usage error: exit status 2, one line.
func usageErrorf(format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), exitUsage)
}

// runtimeErrorf is a runtime error: exit status 1, one line.
func runtimeErrorf(format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), exitRuntime)
}

// flagErrorRE matches the flag package's complaint about a flag's value.
var flagErrorRE = regexp.MustCompile(`^invalid value "(.*)" for flag -(\S+): (.*)$`)

// onUsageError turns cli's flag errors into one line that names the flag
// as it is written (-q, --warm) and says what to write instead.
func onUsageError(c *cli.Context, err error, _ bool) error {
	cmd := "warmport"
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		cmd += " " + c.Command.Name
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return usageErrorf("unknown flag %s; run '%s --help' for the flags", dashed(name), cmd)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usageErrorf("%s needs a value; run '%s --help' for what it takes", dashed(name), cmd)
	}
	if m := flagErrorRE.FindStringSubmatch(msg); m != nil {
		return usageErrorf("%s", badValue(c, m[2], m[1]))
	}
	return usageErrorf("%s; run '%s --help' for usage", oneLine(msg), cmd)
}

// dashed writes a flag's name as it is used: -q, --warm.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// badValue says what is wrong with value for the flag name and what to
// write instead.
func badValue(c *cli.Context, name, value string) string {
	flag := dashed(name)
	var f cli.Flag
	if c.Command != nil {
		for _, cf := range c.Command.Flags {
			if slices.Contains(cf.Names(), name) {
				f = cf
			}
		}
	}
	switch f.(type) {
	case *cli.DurationFlag:
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			return fmt.Sprintf("%s %s: missing unit: write %ss (units: ms, s, m, h)", flag, value, value)
		}
		return fmt.Sprintf("%s %s: not a duration: write a number and a unit, e.g. 500ms, 8s, 2m", flag, value)
	case *cli.IntFlag:
		return fmt.Sprintf("%s %s: not a whole number: write e.g. %s 4", flag, value, flag)
	}
	return fmt.Sprintf("%s %s: not a valid value; run 'warmport --help' for what each command takes", flag, value)
}

// exitStatus prints err as one line and maps it to the contract's status.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "warmport: %s\n", msg)
		}
		return ec.ExitCode()
	}
	// Errors cli returns by itself are about the command line.
	fmt.Fprintf(stderr, "warmport: %s; run 'warmport --help' for usage\n", oneLine(err.Error()))
	return exitUsage
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// signals turns SIGINT, SIGTERM and SIGHUP (a closed terminal, a dropped
// ssh session) into two contexts: the first signal cancels stop (drain and
// exit), the second cancels kill (stop at once). Commands that run a child
// may subscribe to the raw signals as well.
//
// SIGPIPE is caught too, and never read: with it caught, a write to a
// stdout or stderr whose reader is gone returns EPIPE instead of killing
// the process (os/signal's rule for fds 1 and 2), so output can never end
// the relay. A caught signal is reset to the default on exec, unlike an
// ignored one, so a child COMMAND still dies of SIGPIPE as usual.
type signals struct {
	ch         chan os.Signal
	pipe       chan os.Signal
	stopCtx    context.Context
	stopCancel context.CancelFunc
	killCtx    context.Context
	killCancel context.CancelFunc
	relay      chan os.Signal // every signal, for a child command; never blocks the sender
	done       chan struct{}
}

func notifySignals() *signals {
	s := &signals{ch: make(chan os.Signal, 4), pipe: make(chan os.Signal, 1), relay: make(chan os.Signal, 4),
		done: make(chan struct{})}
	s.stopCtx, s.stopCancel = context.WithCancel(context.Background())
	s.killCtx, s.killCancel = context.WithCancel(context.Background())
	signal.Notify(s.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	signal.Notify(s.pipe, syscall.SIGPIPE)
	go s.loop()
	return s
}

func (s *signals) loop() {
	n := 0
	for {
		select {
		case sig := <-s.ch:
			select {
			case s.relay <- sig:
			default:
			}
			if n++; n == 1 {
				s.stopCancel()
			} else {
				s.killCancel()
			}
		case <-s.done:
			return
		}
	}
}

func (s *signals) stop() {
	signal.Stop(s.ch)
	// s.pipe stays subscribed: run's caller may still write the exit line.
	close(s.done)
	s.stopCancel()
	s.killCancel()
}

type signalsKey struct{}

func withSignals(ctx context.Context, s *signals) context.Context {
	return context.WithValue(ctx, signalsKey{}, s)
}

func signalsFrom(ctx context.Context) *signals {
	if s, ok := ctx.Value(signalsKey{}).(*signals); ok {
		return s
	}
	// Not reached from run. A caller without signals gets contexts that are
	// never canceled, and no goroutine or signal handler of its own.
	return &signals{stopCtx: context.Background(), killCtx: context.Background(), relay: make(chan os.Signal)}
}
