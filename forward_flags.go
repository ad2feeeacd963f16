package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
)

// Defaults and bounds of forward's numeric flags; README.md explains each.
const (
	defaultWarm         = 2
	defaultDrainTimeout = 10 * time.Second

	// maxWarm: every warm connection is dialed at once at start and then
	// held by the server as a connection that has not authenticated;
	// servers refuse long before this (sshd's MaxStartups drops all beyond
	// 100 by default, MySQL's max_connections is 151), and each dial in
	// flight is a goroutine that a blackholed upstream holds for
	// --dial-timeout.
	maxWarm = 100
	// maxPoolMax: an idle connection holds one fd and the server's slot,
	// and each borrow walks the idle set; 1024 covers --reuse for a
	// thousand clients in flight at a fraction of a 20000-fd limit.
	maxPoolMax = 1024
	// maxMaxConns: a relayed pair holds two fds, and Linux lets one process
	// hold at most fs.nr_open (1048576 by default) fds, so more pairs than
	// this can never be open at once.
	maxMaxConns = 500_000
	// maxSSHConns: each is a login and a process on the bastion; sshd's
	// MaxStartups (10 by default) drops logins beyond it while they are in
	// flight, and four is what the peer bench needed.
	maxSSHConns = 8
)

// flagScope says where a forward flag belongs in a profile (warmport up):
// in each [forward.NAME] table, or only at the top, for the whole process.
type flagScope uint8

const (
	perForward  flagScope = iota // a property of one forward
	processWide                  // one value for the process: output, state, when to exit
)

// flagSpec is one forward flag with what the command line and a profile both
// need to know about it: its scope and the values it accepts.
type flagSpec struct {
	cli.Flag
	scope    flagScope
	min, max int  // an IntFlag's accepted range
	positive bool // a DurationFlag that must be more than 0
}

// forwardFlags is the one table of forward's flags: the command line, help,
// the man page, completion and (next) the profile's keys are all made from it.
var forwardFlags = []flagSpec{
	{Flag: &cli.IntFlag{Name: "warm", Value: defaultWarm, Usage: "`N` upstream connections kept pre-dialed; 0 = none, every client dials"},
		min: 0, max: maxWarm},
	{Flag: &cli.IntFlag{Name: "pool-max", Value: pool.DefaultMax, Usage: "keep at most `N` idle pooled connections, the least recently used closed first; at least --warm"},
		min: 1, max: maxPoolMax},
	{Flag: &cli.DurationFlag{Name: "pool-ttl", Value: pool.DefaultTTL, Usage: "close a pooled connection idle longer than `DUR`, never hand it out; more than 0"},
		positive: true},
	{Flag: &cli.StringFlag{
		Name:        "reuse",
		Usage:       "recycle an upstream connection after a client is done, when PROTO's framing proves it clean: http (HTTP/1.1) or redis (RESP, state RESET before reuse)",
		DefaultText: "off",
		// Checked as the flag is parsed, before LOCAL REMOTE: a bare
		// --reuse takes the next word, so name the choices first.
		Action: func(_ *cli.Context, v string) error {
			if _, err := recycle.Lookup(v); err != nil {
				return usageErrorf("--reuse %s: %v (a bare --reuse is no longer accepted)", v, err)
			}
			return nil
		},
	}},
	{Flag: &cli.IntFlag{Name: "max-conns", Usage: "`N` clients relayed at once, extra ones wait; 0 = no limit"},
		min: 0, max: maxMaxConns},
	{Flag: &cli.DurationFlag{Name: "idle-timeout", Usage: "close a connection with no byte either way for `DUR`; 0 = never"}},
	{Flag: &cli.DurationFlag{Name: "dial-timeout", Value: forward.DefaultDialTimeout, Usage: "give up dialing REMOTE after `DUR`; more than 0"},
		positive: true},
	{Flag: &cli.BoolFlag{Name: "require-remote", Usage: "exit 1 at start unless the first warm connection to REMOTE succeeds (needs --warm 1 or more)"}},
	{Flag: &cli.DurationFlag{Name: "exit-idle", Usage: "exit after `DUR` with no connection open; 0 = never"},
		scope: processWide},
	{Flag: &cli.DurationFlag{Name: "drain-timeout", Value: defaultDrainTimeout, Usage: "on SIGINT/SIGTERM/SIGHUP, wait `DUR` for open connections; 0 = close them at once"},
		scope: processWide},
	{Flag: &cli.BoolFlag{Name: "json", Usage: "print the session summary as JSON on stdout at exit"},
		scope: processWide},
	{Flag: &cli.StringFlag{Name: "json-file", Usage: "write the session summary as JSON to `PATH` at exit (created 0600 at start), apart from COMMAND's stdout"},
		scope: processWide},
	{Flag: &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no line per closed connection"},
		scope: processWide},
	{Flag: stateDirFlag, scope: processWide},

	// --via: reach REMOTE through an SSH server (ssh_flags.go checks them).
	{Flag: &cli.StringFlag{Name: "via", Usage: "reach REMOTE through the SSH server `[USER@]HOST[:PORT]` (HOST may be a Host alias of the SSH config), as ssh -L does; REMOTE is dialed by that server"}},
	{Flag: &cli.StringSliceFlag{Name: "identity", Usage: "with --via: a private key `FILE` to try after the agent's keys, instead of the config's IdentityFile and the default keys (repeatable)"}},
	{Flag: &cli.StringFlag{Name: "known-hosts", Usage: "with --via: check the SSH server's host key against `FILE`", DefaultText: "the config's UserKnownHostsFile, else ~/.ssh/known_hosts"}},
	{Flag: &cli.StringFlag{Name: "ssh-config", Usage: "with --via: read this ssh_config `FILE` (through ssh -G); none reads none", DefaultText: "~/.ssh/config"}},
	{Flag: &cli.IntFlag{Name: "ssh-conns", Value: 1, Usage: "with --via: keep `N` SSH connections (N logins) and open each new channel on the quietest, so clients that come back to back over a slow link get their first reply in one round trip, not two (sshd leaves Nagle on); 4 does it"},
		min: 1, max: maxSSHConns},
	// TLS origination (upstream/tlsup, tls_upstream.go): the client side of
	// TLS to REMOTE; local clients speak plaintext.
	{Flag: &cli.BoolFlag{Name: "tls", Usage: "speak TLS to REMOTE, verifying its certificate against the system's roots for REMOTE's host"}},
	{Flag: &cli.StringFlag{Name: "tls-ca", Usage: "verify REMOTE with the CA certificates in `FILE` (PEM) instead of the system's roots"}},
	{Flag: &cli.StringFlag{Name: "tls-server-name", Usage: "verify REMOTE's certificate for `NAME` and send it as SNI; default REMOTE's host (needed for unix:PATH)"}},
	{Flag: &cli.StringFlag{Name: "tls-cert", Usage: "client certificate `FILE` (PEM; may hold the key too) for a server that demands one (mTLS)"}},
	{Flag: &cli.StringFlag{Name: "tls-key", Usage: "private key `FILE` (PEM) of --tls-cert"}},
	{Flag: &cli.BoolFlag{Name: "tls-insecure", Usage: "do not verify REMOTE's certificate (a warning says so): anyone on the path can read and change the traffic"}},

	// Operations: who may connect, and what REMOTE learns about them.
	{Flag: &cli.StringSliceFlag{Name: "allow", Usage: "only clients from `CIDR[,CIDR...]` (repeatable; a bare IP is one address); others are reset at accept and counted as denied. Default: everyone who can reach LOCAL"}},
	{Flag: &cli.StringFlag{Name: "proxy-protocol", Usage: "send REMOTE a PROXY protocol header (`VERSION` v1 or v2) with the client's address before its bytes, on warm connections too; not with --reuse",
		DefaultText: "off"}},
}

func init() {
	for _, s := range forwardFlags {
		if f, ok := s.Flag.(*cli.IntFlag); ok {
			f.Usage += fmt.Sprintf(" (%d to %d)", s.min, s.max)
		}
		forwardCommand.Flags = append(forwardCommand.Flags, s.Flag)
	}
}

// findFlag returns the forward flag called name (long or short), or nil.
func findFlag(name string) *flagSpec {
	for i, s := range forwardFlags {
		for _, n := range s.Names() {
			if n == name {
				return &forwardFlags[i]
			}
		}
	}
	return nil
}

// takesValue reports whether a flag reads the next argument as its value.
func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

// checkFlags applies the table's bounds to what c was given.
func checkFlags(c *cli.Context, specs []flagSpec) error {
	for _, s := range specs {
		name := s.Names()[0]
		switch s.Flag.(type) {
		case *cli.IntFlag:
			if v := c.Int(name); v < s.min || v > s.max {
				return usageErrorf("--%s %d: out of range: give %d to %d", name, v, s.min, s.max)
			}
		case *cli.DurationFlag:
			switch v := c.Duration(name); {
			case v < 0:
				return usageErrorf("--%s %s: must not be negative", name, v)
			case v == 0 && s.positive:
				return usageErrorf("--%s 0: must be more than 0 (the default is %s)", name, s.Flag.(*cli.DurationFlag).Value)
			}
		}
	}
	return nil
}

// forwardArgs are LOCAL, REMOTE and the optional child command.
type forwardArgs struct {
	local, remote string
	command       []string
}

// parseForwardArgs reads LOCAL REMOTE [-- COMMAND] from args, what cli left
// after the flags. typed is what came between "forward" and args, as the
// user wrote it: a suggestion made of it keeps every flag and value.
func parseForwardArgs(args, typed []string) (forwardArgs, error) {
	var fa forwardArgs
	var words, late []string
	i := 0
	for ; i < len(args) && args[i] != "--"; i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			if len(words) == 2 { // a command without --: the rest is its own
				words = append(words, args[i:]...)
				i = len(args)
				break
			}
			words = append(words, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := findFlag(name)
		switch {
		case f == nil:
			return fa, usageErrorf("unknown flag %s after LOCAL REMOTE; run 'warmport forward --help' for the flags", a)
		case takesValue(f.Flag) && !hasValue && i+1 == len(args):
			late = append(late, a, "VALUE")
		case takesValue(f.Flag) && !hasValue:
			late = append(late, a, args[i+1])
			i++
		default:
			late = append(late, a)
		}
	}
	if i < len(args) {
		if fa.command = args[i+1:]; len(fa.command) == 0 {
			return fa, usageErrorf("missing COMMAND after --: write warmport forward [flags] LOCAL REMOTE -- COMMAND [ARG...]")
		}
	}
	switch {
	case len(words) == 0:
		return fa, usageErrorf("missing LOCAL and REMOTE: warmport forward [flags] LOCAL REMOTE, e.g. warmport forward 8080 db:5432")
	case len(words) == 1:
		return fa, usageErrorf("missing REMOTE after %q: warmport forward [flags] LOCAL REMOTE, e.g. warmport forward %s db:5432", words[0], shellQuote(words[0]))
	case len(words) > 2:
		fix := cmdLine(append(append(append(typed, late...), words[:2]...), "--"), words[2:], fa.command)
		return fa, usageErrorf("unexpected argument %q after LOCAL REMOTE; to run it as a command put -- before it: %s", words[2], fix)
	case len(late) > 0:
		fix := cmdLine(append(append(typed, late...), words...), cmdTail(fa.command))
		if late[len(late)-1] == "VALUE" {
			return fa, usageErrorf("%s needs a value, and flags come before LOCAL REMOTE: %s", late[len(late)-2], fix)
		}
		return fa, usageErrorf("%s must come before LOCAL REMOTE: %s", strings.Join(late, " "), fix)
	}
	var err error
	if fa.local, err = parseLocalOrPassed(words[0]); err != nil {
		return fa, usageErrorf("%v", err)
	}
	if fa.remote, err = parseRemotes(words[1]); err != nil {
		return fa, usageErrorf("%v", err)
	}
	return fa, nil
}

func cmdTail(command []string) []string {
	if len(command) == 0 {
		return nil
	}
	return append([]string{"--"}, command...)
}

// cmdLine is a warmport forward command line made of parts, each argument
// quoted for a POSIX shell where it needs it.
func cmdLine(parts ...[]string) string {
	out := []string{"warmport", "forward"}
	for _, p := range parts {
		for _, a := range p {
			out = append(out, shellQuote(a))
		}
	}
	return strings.Join(out, " ")
}

// shellQuote quotes s for a POSIX shell if it has anything a shell would
// read differently.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@[]+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func forwardConfig(c *cli.Context, fa forwardArgs) (forward.Config, error) {
	if err := checkFlags(c, forwardFlags); err != nil {
		return forward.Config{}, err
	}
	if c.Int("warm") > c.Int("pool-max") {
		return forward.Config{}, usageErrorf("--warm %d exceeds --pool-max %d: raise --pool-max or lower --warm", c.Int("warm"), c.Int("pool-max"))
	}
	if c.Bool("require-remote") && c.Int("warm") == 0 {
		return forward.Config{}, usageErrorf("--require-remote checks REMOTE with the first warm connection: give --warm 1 or more with it")
	}
	var reuse recycle.Protocol
	if c.IsSet("reuse") {
		p, err := recycle.Lookup(c.String("reuse"))
		if err != nil {
			return forward.Config{}, usageErrorf("--reuse %s: %v", c.String("reuse"), err)
		}
		reuse = p
	}
	tlsUp, err := tlsFor(c, fa.remote)
	if err != nil {
		return forward.Config{}, err
	}
	ops, err := opsConfig(c, fa)
	if err != nil {
		return forward.Config{}, err
	}
	cfg := forward.Config{
		Allow:         ops.Allow,
		ProxyProtocol: ops.ProxyProtocol,
		Listener:      ops.Listener,
		Local:         fa.local,
		Remote:        fa.remote,
		DialTimeout:   c.Duration("dial-timeout"),
		IdleTimeout:   c.Duration("idle-timeout"),
		MaxConns:      c.Int("max-conns"),
		ExitIdle:      c.Duration("exit-idle"),
		Reuse:         reuse,
		Pool:          pool.Options{Warm: c.Int("warm"), Max: c.Int("pool-max"), TTL: c.Duration("pool-ttl")},
	}
	if tlsUp != nil {
		tlsUp.apply(&cfg)
	}
	return cfg, nil
}
