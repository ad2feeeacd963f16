package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A peer is one way of getting from the client to the upstream.
type peer struct {
	name   string   // row label
	kind   string   // which program
	flags  []string // extra warmport flags (before LOCAL REMOTE)
	before bool     // warmport: run the -warmport-before binary
	// custom, if set, makes the command line (and the address clients
	// use) from a free port, its 127.0.0.1 address and the upstream: the
	// TLS and Unix tests' peers (tls_linux.go).
	custom func(port int, listen, upstream string) (argv []string, addr string, err error)
}

const (
	kindDirect   = "direct"
	kindWarmport = "warmport"
	kindSocat    = "socat"
	kindProxyd   = "systemd-socket-proxyd"
	kindHAProxy  = "haproxy"
)

var (
	pDirect   = peer{name: directName, kind: kindDirect}
	pWarmport = peer{name: "warmport", kind: kindWarmport}
	pWarm0    = peer{name: "warmport --warm 0", kind: kindWarmport, flags: []string{"--warm", "0"}}
	pWarm2    = peer{name: "warmport --warm 2", kind: kindWarmport, flags: []string{"--warm", "2"}}
	// pReuse recycles upstreams, which the short-connection test's HTTP/1.1
	// exchange allows (a complete response, then the client's clean close);
	// 64 idle ones cover 50 clients.
	pReuse   = peer{name: "warmport --reuse http --pool-max 64", kind: kindWarmport, flags: []string{"--reuse", "http", "--pool-max", "64"}}
	pSocat   = peer{name: "socat", kind: kindSocat}
	pProxyd  = peer{name: "systemd-socket-proxyd", kind: kindProxyd}
	pHAProxy = peer{name: "haproxy", kind: kindHAProxy}
)

// readyRE matches warmport's ready line on stderr; the submatch is the
// address it actually listens on (we pass port 0).
var readyRE = regexp.MustCompile(`forwarding (\S+) -> \S+`)

// tools are the peer programs found (or built) on this machine.
type tools struct {
	warmport, before, socat, haproxy, proxyd, activate string
	stunnel                                            string
	built                                              bool              // warmport was built from the working tree
	missing                                            map[string]string // kind -> why it is skipped
	versions                                           []string
}

func (t *tools) has(kind string) bool { _, gone := t.missing[kind]; return !gone }

// findTools installs socat and HAProxy when missing (unless noInstall),
// locates systemd-socket-proxyd and builds warmport (unless given a binary).
func findTools(tmp, warmportBin, beforeBin string, noInstall bool) *tools {
	t := &tools{before: beforeBin, missing: map[string]string{}}
	installMissing(noInstall)
	var err error
	if t.socat, err = exec.LookPath("socat"); err != nil {
		t.missing[kindSocat] = "socat not installed"
	}
	if t.haproxy, err = exec.LookPath("haproxy"); err != nil {
		t.missing[kindHAProxy] = "haproxy not installed"
	}
	for _, p := range []string{"/lib/systemd/systemd-socket-proxyd", "/usr/lib/systemd/systemd-socket-proxyd"} {
		if _, err := os.Stat(p); err == nil {
			t.proxyd = p
			break
		}
	}
	t.activate, err = exec.LookPath("systemd-socket-activate")
	if t.proxyd == "" || err != nil {
		t.missing[kindProxyd] = "systemd-socket-proxyd or systemd-socket-activate not found " +
			"(both ship in Debian's systemd package; not installed automatically)"
	}
	if warmportBin != "" {
		t.warmport = warmportBin
	} else if t.warmport, err = buildWarmport(tmp); err != nil {
		t.missing[kindWarmport] = err.Error()
	} else {
		t.built = true
	}
	t.versions = t.versionLines()
	t.findStunnel()
	return t
}

// installMissing runs apt-get update and apt-get install -y for socat and
// haproxy when either is not on PATH, saying what it does.
func installMissing(noInstall bool) {
	var missing []string
	for _, bin := range []string{"socat", "haproxy"} { // package name = binary name
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	if noInstall {
		logf("not installing %s (-no-install): skipping them", strings.Join(missing, ", "))
		return
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		logf("%s missing and no apt-get: skipping them", strings.Join(missing, ", "))
		return
	}
	for _, argv := range [][]string{{"apt-get", "update"}, append([]string{"apt-get", "install", "-y"}, missing...)} {
		logf("installing peers: %s", strings.Join(argv, " "))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			logf("%s failed: %v", strings.Join(argv, " "), err)
			return
		}
	}
}

// buildWarmport builds the forwarder from the repository root (the current
// directory) into tmp.
func buildWarmport(tmp string) (string, error) {
	mod, err := os.ReadFile("go.mod")
	if err != nil || !strings.Contains(string(mod), "module github.com/warmport/warmport\n") {
		return "", errors.New("run from the warmport repository root (go run ./peerbench) or pass -warmport BINARY")
	}
	bin := filepath.Join(tmp, "warmport")
	logf("building warmport: go build -o %s .", bin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 5 {
			lines = append(lines[:5], "...")
		}
		return "", fmt.Errorf("go build . failed: %v: %s", err, strings.Join(lines, " / "))
	}
	return bin, nil
}

// versionLines describes each peer program for the report header.
func (t *tools) versionLines() []string {
	first := func(argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				return s
			}
		}
		return "?"
	}
	var v []string
	if t.has(kindWarmport) {
		rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
		from := ""
		if t.built {
			from = " (repo HEAD " + strings.TrimSpace(string(rev)) + " + working tree)"
		}
		v = append(v, "warmport: "+t.warmport+from+", "+first(t.warmport, "--version"))
		if t.before != "" {
			v = append(v, "warmport (before): "+t.before+", "+first(t.before, "--version"))
		}
	}
	if t.has(kindSocat) {
		out, _ := exec.Command(t.socat, "-V").CombinedOutput()
		s := "?"
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "socat version") {
				s = strings.TrimSpace(l)
				break
			}
		}
		v = append(v, "socat: "+s)
	}
	if t.has(kindProxyd) {
		v = append(v, "systemd-socket-proxyd: "+first(t.proxyd, "--version"))
	}
	if t.has(kindHAProxy) {
		v = append(v, "haproxy: "+first(t.haproxy, "-v"))
	}
	return v
}

// forwarder is a running peer: the address clients connect to and, unless
// the peer is direct, the forwarder's process.
type forwarder struct {
	addr string
	proc *proc
}

// cpu is the forwarder tree's CPU time so far in ns (0 for direct).
func (f *forwarder) cpu() int64 {
	if f.proc == nil {
		return 0
	}
	return cpuNanos(f.proc.pid())
}

// stop stops the forwarder and returns its stdout (warmport's --json).
func (f *forwarder) stop() []byte {
	if f.proc == nil {
		return nil
	}
	return f.proc.stop(5 * time.Second)
}

// start starts a fresh forwarder of kind p listening on 127.0.0.1 (inside ns
// if ns is set) and forwarding to upstream. It waits until it listens, except
// in a namespace, where only the client can connect: the client polls there.
func (b *bench) start(p peer, ns, upstream string, jsonOut bool) (*forwarder, error) {
	if p.kind == kindDirect {
		return &forwarder{addr: upstream}, nil
	}
	if !b.tools.has(p.kind) {
		return nil, fmt.Errorf("%w: %s", errNotAvailable, b.tools.missing[p.kind])
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a picked port can be taken meanwhile
		var f *forwarder
		if f, err = b.tryStart(p, ns, upstream, jsonOut); err == nil {
			return f, nil
		}
	}
	return nil, err
}

func (b *bench) tryStart(p peer, ns, upstream string, jsonOut bool) (*forwarder, error) {
	if p.custom != nil {
		return b.tryStartCustom(p, ns, upstream)
	}
	port := 0 // warmport picks its own port and says which
	if p.kind != kindWarmport {
		port = b.freePort(ns)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	var argv []string
	var watch *regexp.Regexp
	switch p.kind {
	case kindWarmport:
		bin := b.tools.warmport
		if p.before {
			bin = b.tools.before
		}
		argv = append([]string{bin, "forward", "-q"}, p.flags...)
		if jsonOut {
			argv = append(argv, "--json")
		}
		argv = append(argv, listen, upstream)
		watch = readyRE
	case kindSocat:
		argv = []string{b.tools.socat, fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096", port), "TCP:" + upstream}
	case kindProxyd:
		argv = []string{b.tools.activate, "-l", listen, b.tools.proxyd, "--connections-max=10000", upstream}
	case kindHAProxy:
		cfg, err := b.haproxyConfig(listen, upstream)
		if err != nil {
			return nil, err
		}
		argv = []string{b.tools.haproxy, "-f", cfg, "-db"}
	default:
		return nil, fmt.Errorf("unknown peer kind %q", p.kind)
	}
	return launchPeer(p, ns, argv, listen, watch)
}

// launchPeer runs argv (in ns, if set) and waits until it is ready: warmport
// at its ready line, the others once a connection to listen succeeds
// (outside a namespace; inside, the client polls).
func launchPeer(p peer, ns string, argv []string, listen string, watch *regexp.Regexp) (*forwarder, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...) // execs in place: same PID
	}
	pr, err := launch(p.name, argv, watch)
	if err != nil {
		return nil, err
	}
	f := &forwarder{addr: listen, proc: pr}
	switch {
	case p.kind == kindWarmport:
		f.addr, err = pr.readyLine(15 * time.Second)
	case ns == "":
		err = pollConnectAny(pr, listen, 10*time.Second)
	}
	if err != nil {
		pr.kill()
		return nil, err
	}
	return f, nil
}

// freePort returns a port to listen on: one the kernel just handed out on
// loopback, or inside our own namespace (where nothing else runs) the next
// of a private range.
func (b *bench) freePort(ns string) int {
	if ns != "" {
		b.nsPort++
		return 20000 + b.nsPort%20000
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// haproxyMaxconn is 10000, or less when the open files limit cannot hold
// that many (HAProxy needs two descriptors per connection and refuses to
// start otherwise).
func (b *bench) haproxyMaxconn() int {
	return int(max(100, min(10000, (int64(b.nofile)-100)/2)))
}

// haproxyConfig writes a TCP-mode config for one run and returns its path.
func (b *bench) haproxyConfig(listen, upstream string) (string, error) {
	b.cfgN++
	path := filepath.Join(b.tmp, fmt.Sprintf("haproxy-%d.cfg", b.cfgN))
	cfg := fmt.Sprintf(`global
    maxconn %[3]d

defaults
    mode tcp
    maxconn %[3]d
    timeout connect 5s
    timeout client 1h
    timeout server 1h

listen bench
    bind %[1]s
    server upstream %[2]s
`, listen, upstream, b.haproxyMaxconn())
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}
