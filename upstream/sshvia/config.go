package sshvia

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config says how to reach the SSH server. Only Via is required.
type Config struct {
	// Via is [USER@]HOST[:PORT]; HOST may be a Host alias of the SSH config.
	Via string
	// Identities are --identity files, tried after the agent's keys and
	// instead of the config's IdentityFile and the default keys.
	Identities []string
	// KnownHosts is the known_hosts file; "" means the config's
	// UserKnownHostsFile, else ~/.ssh/known_hosts.
	KnownHosts string
	// SSHConfig is the ssh_config file; "" means ~/.ssh/config (and the
	// system's, as ssh reads them), "none" reads none.
	SSHConfig string
	// Home replaces the home directory for "~"; "" means os.UserHomeDir.
	// When set, only Home's ~/.ssh/config is read, never the system's.
	Home string
	// AgentSock is the ssh-agent socket; "" means $SSH_AUTH_SOCK (or the
	// config's IdentityAgent), "none" uses no agent.
	AgentSock string
	// DialTimeout bounds each TCP connect and SSH handshake; 0 means 15s.
	DialTimeout time.Duration
	// Logf gets one line per drop, per recovery and per distinct failure to
	// connect, for the tunnel as a whole (not per connection), from the
	// tunnel's own goroutines; nil logs nothing.
	Logf func(format string, a ...any)
	// OnReconnect, if set, is called once per recovery from a drop, when
	// the first connection is back, from the tunnel's own goroutine, so a
	// pool can drop its dead channels and open new ones at once.
	OnReconnect func()
	// Prompt asks for an encrypted key's passphrase; nil means there is no
	// terminal, and encrypted keys not in the agent are skipped.
	Prompt func(prompt string) ([]byte, error)
	// Conns is how many SSH connections the tunnel keeps; 0 means one
	// (see defaultConns for when more pay: --ssh-conns).
	Conns int

	// Test knobs: zero means the config's or the default.
	alive     time.Duration // ServerAliveInterval
	aliveMax  int           // ServerAliveCountMax
	backoff   time.Duration // the first redial back-off
	parked    func()        // called when a keeper waits for the leader's redial
	spreadRTT time.Duration // see Tunnel.pick; 0 means defaultSpreadRTT
	ciphers   []string      // cipher preference
}

const (
	defaultDialTimeout   = 15 * time.Second
	defaultAliveInterval = 15 * time.Second
	defaultAliveCountMax = 3
	maxJumps             = 8
)

// host is one SSH server as the config resolves it.
type host struct {
	alias      string // what the user wrote: the config's Host pattern input
	user       string
	hostname   string
	port       int
	identities []string // expanded paths, in config order
	knownHosts []string
	agent      string   // IdentityAgent: "" for SSH_AUTH_SOCK, "none" for none
	jumps      []string // ProxyJump hops, first hop first
	alive      time.Duration
	aliveMax   int
}

// addr is host:port for dialing and for known_hosts.
func (h *host) addr() string {
	return net.JoinHostPort(h.hostname, strconv.Itoa(h.port))
}

// String is user@host:port, as JSON "via" shows it.
func (h *host) String() string {
	return h.user + "@" + h.addr()
}

// splitDest parses [USER@]HOST[:PORT] (HOST may be [IPv6]) and an ssh://
// URL, as ProxyJump hops are written.
func splitDest(s string) (usr, hst string, port int, err error) {
	s = strings.TrimPrefix(s, "ssh://")
	if i := strings.LastIndex(s, "@"); i >= 0 {
		usr, s = s[:i], s[i+1:]
	}
	hst = s
	if h, p, e := net.SplitHostPort(s); e == nil {
		hst = h
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", "", 0, fmt.Errorf("bad port in %q", s)
		}
	} else if strings.Count(s, ":") == 1 {
		return "", "", 0, fmt.Errorf("bad address %q: %v", s, e)
	}
	hst = strings.TrimSuffix(strings.TrimPrefix(hst, "["), "]")
	if hst == "" {
		return "", "", 0, errors.New("no host in " + strconv.Quote(s))
	}
	return usr, hst, port, nil
}

// resolver turns a destination into a host. It reads the SSH config through
// `ssh -G`, which is OpenSSH's own reading: Match blocks, Include, tokens,
// first value wins and the system config, exactly as ssh would connect (a Go
// parser without Match fails on Fedora's default config, boring#20).
type resolver struct {
	home     string
	pwHome   string // the passwd home ssh expands "~" with, rewritten to home
	config   string // -F argument; "" lets ssh pick its files
	sshPath  string // "" when no ssh -G is needed or possible
	localUsr string
}

func newResolver(cfg *Config) (*resolver, error) {
	r := &resolver{home: cfg.Home}
	if r.home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no home directory: %v", err)
		}
		r.home = h
	}
	if u, err := user.Current(); err == nil {
		r.localUsr, r.pwHome = u.Username, u.HomeDir
	}
	switch {
	case cfg.SSHConfig == "none":
		return r, nil
	case cfg.SSHConfig != "":
		r.config = cfg.SSHConfig
		if _, err := os.Stat(r.config); err != nil {
			return nil, fmt.Errorf("ssh config: %v", err)
		}
	case cfg.Home != "":
		r.config = filepath.Join(r.home, ".ssh", "config")
		if _, err := os.Stat(r.config); err != nil {
			return r, nil // tests' homes: no config read at all
		}
	}
	p, err := exec.LookPath("ssh")
	if err != nil {
		if r.config == "" {
			return r, nil // no OpenSSH, so no config it would read either
		}
		return nil, fmt.Errorf("reading %s needs OpenSSH's ssh -G (Debian: openssh-client), or pass --ssh-config none", r.config)
	}
	r.sshPath = p
	return r, nil
}

// resolve reads dest's settings; cli user and port win over the config's,
// as on ssh's command line.
func (r *resolver) resolve(ctx context.Context, dest string) (*host, error) {
	usr, hst, port, err := splitDest(dest)
	if err != nil {
		return nil, err
	}
	h := &host{alias: hst, user: usr, hostname: hst, port: port, aliveMax: defaultAliveCountMax}
	if r.sshPath != "" {
		if err := r.sshG(ctx, h); err != nil {
			return nil, err
		}
	}
	if h.user == "" {
		h.user = r.localUsr
	}
	if h.port == 0 {
		h.port = 22
	}
	if h.alive <= 0 {
		h.alive = defaultAliveInterval
	}
	if h.aliveMax <= 0 {
		h.aliveMax = defaultAliveCountMax
	}
	if len(h.identities) == 0 {
		for _, k := range []string{"id_rsa", "id_ecdsa", "id_ed25519"} {
			h.identities = append(h.identities, filepath.Join(r.home, ".ssh", k))
		}
	}
	if len(h.knownHosts) == 0 {
		h.knownHosts = []string{filepath.Join(r.home, ".ssh", "known_hosts")}
	}
	return h, nil
}

func (r *resolver) sshG(ctx context.Context, h *host) error {
	args := []string{"-G"}
	if r.config != "" {
		args = append(args, "-F", r.config)
	}
	if h.user != "" {
		args = append(args, "-l", h.user)
	}
	if h.port != 0 {
		args = append(args, "-p", strconv.Itoa(h.port))
	}
	args = append(args, "--", h.alias)
	cmd := exec.CommandContext(ctx, r.sshPath, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return fmt.Errorf("ssh -G %s: %v: %s", h.alias, err, msg)
	}
	var rawIDs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "user":
			h.user = val
		case "hostname":
			h.hostname = val
		case "port":
			h.port, _ = strconv.Atoi(val)
		case "identityfile":
			rawIDs = append(rawIDs, val)
		case "userknownhostsfile":
			for _, f := range strings.Fields(val) {
				h.knownHosts = append(h.knownHosts, r.path(f, h))
			}
		case "identityagent":
			h.agent = val
		case "proxyjump":
			if val != "none" {
				h.jumps = strings.Split(val, ",")
			}
		case "proxycommand":
			if val != "none" {
				return fmt.Errorf("%s: ProxyCommand is not supported; use ProxyJump", h.alias)
			}
		case "serveraliveinterval":
			n, _ := strconv.Atoi(val)
			h.alive = time.Duration(n) * time.Second
		case "serveralivecountmax":
			h.aliveMax, _ = strconv.Atoi(val)
		}
	}
	for _, f := range rawIDs {
		h.identities = append(h.identities, r.path(f, h))
	}
	if h.agent != "" && h.agent != "none" && h.agent != "SSH_AUTH_SOCK" {
		h.agent = r.path(h.agent, h)
	}
	return nil
}

// path expands what ssh leaves in a path: "~", the tokens OpenSSH allows in
// IdentityFile and UserKnownHostsFile, and the passwd home that ssh put
// where the config said "~" (ssh ignores $HOME; we honour it).
func (r *resolver) path(p string, h *host) string {
	if r.pwHome != "" && r.pwHome != r.home && (p == r.pwHome || strings.HasPrefix(p, r.pwHome+"/")) {
		p = r.home + p[len(r.pwHome):]
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = r.home + p[1:]
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(r.home)
		case 'h':
			b.WriteString(h.hostname)
		case 'n':
			b.WriteString(h.alias)
		case 'p':
			b.WriteString(strconv.Itoa(h.port))
		case 'r':
			b.WriteString(h.user)
		case 'u':
			b.WriteString(r.localUsr)
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}
