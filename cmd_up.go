package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/profile"
)

// defaultProfile is the profile up reads without -f: one checked in next to
// the code it serves.
const defaultProfile = "warmport.toml"

var upFileFlag = &cli.StringFlag{Name: "file", Aliases: []string{"f"}, Value: defaultProfile, Usage: "read the profile from `FILE`"}

var upCommand = &cli.Command{
	Name:      "up",
	Usage:     "run every forward of a profile (warmport.toml) in one process",
	ArgsUsage: "[NAME...] [-- COMMAND [ARG...]]",
	Description: "The profile is TOML: top-level keys are defaults for every forward, and each [forward.NAME] table\n" +
		"has local, remote and any flag of warmport forward by its long name (README, \"Profiles\").\n" +
		"NAMEs run only those forwards. With -- COMMAND, COMMAND gets WARMPORT_<NAME>_ADDR and\n" +
		"WARMPORT_<NAME>_PORT for each forward and warmport exits with its status. Flags go before NAMEs.",
	// Flags: upFileFlag, --check and the process-wide flags of forward's
	// table, the same values, in init.
	OnUsageError: onUsageError,
	Action:       upAction,
}

var upCheckFlag = &cli.BoolFlag{Name: "check", Usage: "check the profile and exit: 0, or its first error as FILE:LINE with status 2; listens on nothing"}

func init() {
	upCommand.Flags = []cli.Flag{upFileFlag, upCheckFlag}
	for _, s := range processWideFlags() {
		upCommand.Flags = append(upCommand.Flags, s.Flag)
	}
}

// processWideFlags are the flags of forward's table that are one value for
// the whole process: up's own flags, and top-level-only keys of a profile.
func processWideFlags() []flagSpec {
	var out []flagSpec
	for _, s := range forwardFlags {
		if s.scope == processWide {
			out = append(out, s)
		}
	}
	return out
}

func upAction(c *cli.Context) error {
	names, command, err := upArgs(c)
	if err != nil {
		return err
	}
	if err := checkFlags(c, processWideFlags()); err != nil {
		return err
	}
	p, err := loadProfile(c.String("file"), c.IsSet("file"))
	if err != nil {
		return err
	}
	if err := p.Select(names); err != nil {
		return usageErrorf("%v", err)
	}
	specs, err := profileSpecs(c, p)
	if err != nil {
		return usageErrorf("%v", err)
	}
	top := cli.NewContext(c.App, p.Top, nil)
	for _, s := range processWideFlags() {
		name := s.Names()[0]
		if c.IsSet(name) {
			continue
		}
		if err := checkFlags(top, []flagSpec{s}); err != nil {
			return usageErrorf("%v", topError(p, name, err))
		}
	}
	if c.Bool("check") {
		fmt.Fprintf(c.App.ErrWriter, "warmport: %s: no error; forwards %s\n", p.File, strings.Join(p.Names(), ", "))
		return nil
	}
	o := sessionOptions(func(name string) *cli.Context {
		if c.IsSet(name) {
			return c
		}
		return top
	})
	o.up, o.command = true, command
	return runSession(c, specs, o)
}

// upArgs splits what follows up's flags into NAMEs and COMMAND. The flag
// parser has taken a -- that came right after the flags, so the command
// line as typed tells whether the words left are NAMEs or COMMAND.
func upArgs(c *cli.Context) (names, command []string, err error) {
	args := c.Args().Slice()
	raw, _ := c.Context.Value(argsKey{}).([]string)
	if i := len(raw) - len(args) - 1; i >= 2 && raw[i] == "--" && !wantsValue(raw[i-1]) {
		command = args
		if len(command) == 0 {
			return nil, nil, usageErrorf("missing COMMAND after --: write warmport up [NAME...] -- COMMAND [ARG...]")
		}
		return nil, command, nil
	}
	for i, a := range args {
		if a == "--" {
			if command = args[i+1:]; len(command) == 0 {
				return nil, nil, usageErrorf("missing COMMAND after --: write warmport up [NAME...] -- COMMAND [ARG...]")
			}
			break
		}
		if strings.HasPrefix(a, "-") {
			return nil, nil, usageErrorf("flag %s after a NAME: flags go first, as in warmport up %s %s", a, a, strings.Join(args[:i], " "))
		}
		names = append(names, a)
	}
	return names, command, nil
}

// wantsValue reports whether word is one of up's flags that takes the next
// word as its value (--state-dir --), not --name=value.
func wantsValue(word string) bool {
	name := strings.TrimLeft(word, "-")
	if name == word || strings.Contains(name, "=") {
		return false
	}
	flags := []cli.Flag{upFileFlag}
	for _, s := range processWideFlags() {
		flags = append(flags, s.Flag)
	}
	return slices.ContainsFunc(flags, func(f cli.Flag) bool { return takesValue(f) && slices.Contains(f.Names(), name) })
}

// loadProfile reads and parses the profile at path; named is whether -f
// named it. Every error is a usage error, as for a file named by a flag.
func loadProfile(path string, named bool) (*profile.Profile, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !named:
		return nil, usageErrorf(`no %s here: write one (README "Profiles") or name one with -f FILE`, defaultProfile)
	case err != nil:
		return nil, usageErrorf("cannot read the profile: %s; name a readable file with -f FILE", oneLine(err.Error()))
	}
	var flags []cli.Flag
	wide := map[string]bool{}
	for _, s := range forwardFlags {
		flags = append(flags, s.Flag)
		if s.scope == processWide {
			wide[s.Names()[0]] = true
		}
	}
	p, err := profile.Parse(path, data, flags, wide)
	var pe *profile.Error
	if err != nil && !errors.As(err, &pe) {
		// A mistake in the flag table, not in the file: ours.
		return nil, runtimeErrorf("%v", err)
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return p, nil
}

// profileSpecs checks each forward of p as forward checks its command line;
// an error is a *profile.Error at the line of the key it is about.
func profileSpecs(c *cli.Context, p *profile.Profile) ([]forwardSpec, error) {
	specs := make([]forwardSpec, 0, len(p.Forwards))
	for _, fw := range p.Forwards {
		local, err := parseLocalOrPassed(fw.Local)
		if err != nil {
			return nil, fw.Errorf("local", "%v", err)
		}
		remote, err := parseRemotes(fw.Remote)
		if err != nil {
			return nil, fw.Errorf("remote", "%v", err)
		}
		fc := cli.NewContext(c.App, fw.Flags, nil)
		cfg, err := forwardConfig(fc, forwardArgs{local: local, remote: remote})
		if err != nil {
			return nil, fw.Errorf(flagOf(err), "%v", err)
		}
		ssh, err := sshOptions(fc)
		if err != nil {
			return nil, fw.Errorf(flagOf(err), "%v", err)
		}
		specs = append(specs, forwardSpec{name: fw.Name, local: local, remote: remote, cfg: cfg, requireRemote: fc.Bool("require-remote"),
			ssh: ssh, tls: fc.Bool("tls"), tlsWarning: tlsWarning(fc)})
	}
	return specs, nil
}

// flagOf is the flag a usage error of forwardConfig starts with ("--warm 5
// exceeds ..."), whose key's line the profile's error points at.
func flagOf(err error) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "--"), " ")
	return name
}

// topError is err about the process-wide key name at its line in p.
func topError(p *profile.Profile, name string, err error) error {
	for _, s := range p.TopSettings {
		if s.Key == name {
			return &profile.Error{File: p.File, Line: s.Line, Msg: err.Error()}
		}
	}
	return err
}
