package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/activation"
	"github.com/warmport/warmport/allowlist"
	"github.com/warmport/warmport/failover"
	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/proxyhdr"
)

// opsConfig reads --allow and --proxy-protocol and, for LOCAL systemd, takes
// the passed socket: the parts of forward.Config the operations features
// fill in (see forward/ops.go).
func opsConfig(c *cli.Context, fa forwardArgs) (forward.Config, error) {
	var cfg forward.Config
	allow, err := allowlist.Parse(c.StringSlice("allow"))
	if err != nil {
		return cfg, usageErrorf("%v", err)
	}
	if allow != nil && strings.HasPrefix(fa.local, "unix:") {
		return cfg, usageErrorf("--allow %s: LOCAL %s is a Unix socket, whose clients have no address to check (its mode 0600 already limits them to you): drop --allow or listen on HOST:PORT",
			allow, fa.local)
	}
	cfg.Allow = allow
	if c.IsSet("proxy-protocol") {
		v, err := proxyhdr.ParseVersion(c.String("proxy-protocol"))
		if err != nil {
			return cfg, usageErrorf("%v", err)
		}
		if c.IsSet("reuse") {
			return cfg, usageErrorf("--proxy-protocol %s cannot go with --reuse: a recycled connection already carries the header of the client before; drop one of them", v)
		}
		cfg.ProxyProtocol = v
	}
	if name, ok := activation.ParseLocal(fa.local); ok {
		ln, err := activation.Listener(name)
		if err != nil {
			return cfg, usageErrorf("%v", err)
		}
		cfg.Listener = ln
	}
	return cfg, nil
}

// parseLocalOrPassed is parseLocal that also takes LOCAL systemd and
// systemd:NAME, a socket passed by socket activation.
func parseLocalOrPassed(s string) (string, error) {
	if _, ok := activation.ParseLocal(s); ok {
		return s, nil
	}
	return parseLocal(s)
}

// parseRemotes parses REMOTE for forward and up: one REMOTE, or failover
// candidates separated by commas, each parsed as a REMOTE.
func parseRemotes(s string) (string, error) {
	if !strings.Contains(s, ",") {
		return parseRemote(s)
	}
	cands, err := failover.Split(s)
	if err != nil {
		return "", fmt.Errorf("bad %v", err)
	}
	for i, c := range cands {
		if cands[i], err = parseRemote(c); err != nil {
			return "", fmt.Errorf("candidate %d of %q: %v", i+1, s, err)
		}
	}
	return strings.Join(cands, ","), nil
}

// noticef is what a forward prints its notices with (forward.Config.Logf):
// a line through the output queue, the forward's name at its end.
func (r *forwardRun) noticef(out *lineQueue) func(format string, args ...any) {
	tag := r.tag()
	return func(format string, args ...any) {
		out.printf("%s%s\n", fmt.Sprintf(format, args...), tag)
	}
}
