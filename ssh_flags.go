package main

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/upstream/sshvia"
)

// sshOptions reads one forward's --via, --identity, --known-hosts and
// --ssh-config into an sshvia.Config (Via "" without SSH). Everything a
// user can get wrong without connecting is a usage error (exit 2) here;
// what needs the server (host key, auth) fails later, at Open (exit 1).
func sshOptions(c *cli.Context) (sshvia.Config, error) {
	cfg := sshvia.Config{Via: strings.TrimSpace(c.String("via"))}
	if cfg.Via == "" {
		for _, name := range []string{"identity", "known-hosts", "ssh-config", "ssh-conns"} {
			if c.IsSet(name) {
				return cfg, usageErrorf("--%s works only with --via: give --via [USER@]HOST[:PORT] too, or drop --%s", name, name)
			}
		}
		return cfg, nil
	}
	if err := checkVia(cfg.Via); err != nil {
		return cfg, usageErrorf("--via %s: %v; write [USER@]HOST[:PORT], e.g. --via deploy@bastion.example.com:22 or a Host alias of ~/.ssh/config", cfg.Via, err)
	}
	// A recycle stops the upstream's reader between replies with a read
	// deadline, which an SSH channel does not have; and what --reuse saves
	// (a connect) is what the warm channels already save.
	if c.IsSet("reuse") {
		return cfg, usageErrorf("--reuse %s cannot be used with --via: an SSH channel cannot be stopped between replies to be recycled safely, and --warm channels already skip the connect; drop --reuse", c.String("reuse"))
	}
	// TLS inside a channel would need a TLS probe that reads through the
	// channel instead of peeking at a socket: not there yet.
	if c.IsSet("tls") {
		return cfg, usageErrorf("--tls cannot be used with --via yet: TLS through an SSH channel is not supported; drop one of them")
	}
	cfg.Conns = c.Int("ssh-conns")
	for _, f := range c.StringSlice("identity") {
		f = expandHome(f)
		if err := readableFile(f); err != nil {
			return cfg, usageErrorf("--identity %s: %v; give the path of a private key (ssh-keygen -f FILE makes one)", f, err)
		}
		cfg.Identities = append(cfg.Identities, f)
	}
	if f := c.String("known-hosts"); f != "" {
		f = expandHome(f)
		// A file not there yet is empty, as for ssh: the unknown host key's
		// error says the line that creates it.
		if err := readableFile(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return cfg, usageErrorf("--known-hosts %s: %v; name a known_hosts file you can read", f, err)
		}
		cfg.KnownHosts = f
	}
	if f := c.String("ssh-config"); f != "" {
		if f != "none" {
			f = expandHome(f)
			if err := readableFile(f); err != nil {
				return cfg, usageErrorf("--ssh-config %s: %v; name an ssh_config file you can read, or none to read none", f, err)
			}
		}
		cfg.SSHConfig = f
	}
	return cfg, nil
}

// checkVia checks [USER@]HOST[:PORT] as far as it can without the SSH config.
func checkVia(via string) error {
	hostPort := via
	if i := strings.LastIndexByte(via, '@'); i >= 0 {
		if i == 0 {
			return errors.New("empty user before @")
		}
		hostPort = via[i+1:]
	}
	host := hostPort
	if strings.HasPrefix(hostPort, "[") || strings.Count(hostPort, ":") == 1 {
		h, port, err := net.SplitHostPort(hostPort)
		if err != nil {
			return errors.New("cannot read HOST[:PORT]")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("the port must be a number from 1 to 65535")
		}
		host = h
	}
	switch {
	case host == "":
		return errors.New("no host")
	case strings.HasPrefix(host, "-"):
		return errors.New("a host cannot start with -")
	case strings.ContainsAny(host, " \t\r\n/"):
		return errors.New("a host has no spaces or slashes")
	}
	return nil
}

// readableFile says why f is not a regular file this user can open.
func readableFile(f string) error {
	st, err := os.Stat(f)
	if err != nil {
		return pathReason(err)
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	r, err := os.Open(f)
	if err != nil {
		return pathReason(err)
	}
	return r.Close()
}

// pathReason drops the path an *fs.PathError repeats, keeping errors.Is.
func pathReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// expandHome reads a leading ~/ as the home directory, for paths in a
// profile, which no shell expanded.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}
