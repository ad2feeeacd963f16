// Command peerbench measures warmport against a direct connection, socat,
// systemd-socket-proxyd and HAProxy in one run: bulk throughput, short
// connections per second, time to first byte over a 10 ms RTT link, and the
// cost of idle connections. Run it as root from the repository root:
//
//	go run ./peerbench [-quick]
//
// See peerbench/README.md.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 { // hidden subcommands, run by the benchmark itself
		switch os.Args[1] {
		case "__link":
			os.Exit(runLink())
		case "__serve":
			os.Exit(runServe(os.Args[2:]))
		case "__servetls":
			os.Exit(runServeTLS(os.Args[2:]))
		case "__ttfb":
			os.Exit(runTTFBClient(os.Args[2:]))
		case "__sshw":
			os.Exit(runSSHWClient(os.Args[2:]))
		}
	}
	os.Exit(runBench(os.Args[1:]))
}

// config is the shape of one run.
type config struct {
	quick       bool
	rounds      int
	warmup      time.Duration // before each measured window
	bulkTime    time.Duration // measured window of the bulk test
	connTime    time.Duration // measured window of the short-connection test
	clients     int           // concurrent short-connection clients
	ttfbClients int           // sequential time-to-first-byte clients
	idleConns   int
	budget      time.Duration // no new round starts if it would end after this
	tests       []string
	peerKinds   map[string]bool
	warmportBin string
	beforeBin   string // a second warmport whose rows run beside the first's
	noInstall   bool
}

var errUsage = errors.New("usage")

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("peerbench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "one short round (under 2 minutes) instead of five full ones (under 10)")
	rounds := fs.Int("rounds", 0, "rounds over all peers (default 5, or 1 with -quick)")
	tests := fs.String("tests", "bulk,conns,ttfb,idle", "tests to run, comma-separated; ssh-ttfb, ssh-bulk, ssh-conns, ssh-heal (or ssh: all four) compare warmport --via with OpenSSH; "+strings.Join(tlsTestNames, ", ")+" compare warmport --tls and Unix sockets with stunnel and socat")
	peers := fs.String("peers", "direct,warmport,socat,systemd-socket-proxyd,haproxy,ssh,stunnel", "peers to run, comma-separated")
	warmportBin := fs.String("warmport", "", "use this warmport binary instead of building the repository's")
	beforeBin := fs.String("warmport-before", "", "also run this (older) warmport binary: every warmport row gets a \"(before)\" twin, interleaved")
	noInstall := fs.Bool("no-install", false, "do not apt-get install missing socat/haproxy; skip them")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./peerbench [flags]   (as root, from the repository root)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return config{}, err
		}
		return config{}, errUsage // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c := config{quick: *quick, rounds: 5, warmup: 500 * time.Millisecond, bulkTime: 3 * time.Second,
		connTime: 3 * time.Second, clients: 50, ttfbClients: 200, idleConns: 2000, budget: 9 * time.Minute,
		warmportBin: *warmportBin, noInstall: *noInstall, peerKinds: map[string]bool{}}
	if *beforeBin != "" {
		abs, err := filepath.Abs(*beforeBin)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return config{}, fmt.Errorf("-warmport-before: %v", err)
		}
		c.beforeBin = abs
	}
	if c.quick {
		c.rounds, c.warmup, c.bulkTime, c.connTime, c.budget = 1, 300*time.Millisecond, time.Second, time.Second, 100*time.Second
	}
	if c.beforeBin != "" { // six more rows: about 40% more time per round
		c.budget = c.budget * 3 / 2
	}
	if *rounds > 0 {
		c.rounds = min(*rounds, 20)
	}
	for _, t := range strings.Split(*tests, ",") {
		if t == "ssh" {
			c.tests = append(c.tests, sshTests...)
			continue
		}
		if !slices.Contains(slices.Concat([]string{testBulk, testConns, testTTFB, testIdle}, sshTests, tlsTestNames), t) {
			return config{}, fmt.Errorf("unknown test %q (bulk, conns, ttfb, idle, ssh-ttfb, ssh-bulk, ssh-conns, ssh-heal, ssh, %s)", t, strings.Join(tlsTestNames, ", "))
		}
		c.tests = append(c.tests, t)
	}
	for _, k := range strings.Split(*peers, ",") {
		if !slices.Contains([]string{kindDirect, kindWarmport, kindSocat, kindProxyd, kindHAProxy, kindSSH, kindStunnel}, k) {
			return config{}, fmt.Errorf("unknown peer %q", k)
		}
		c.peerKinds[k] = true
	}
	return c, nil
}

// bench is the state of one run.
type bench struct {
	cfg    config
	exe    string // this program, for the helpers run inside namespaces
	tmp    string
	tools  *tools
	sink   *server // loopback upstreams
	echo   *server
	http   *server // the short-connection test's upstream
	nsEcho string  // the echo upstream inside wpb-up
	nsPort int     // last port used inside wpb-cli
	cfgN   int     // HAProxy configs written
	nofile uint64  // RLIMIT_NOFILE of this process and its children
	res    *results
	sshRig *sshRig   // the SSH tests' bastions and keys (ssh_linux.go)
	tls    *tlsBench // the TLS and Unix tests' upstreams (tls_linux.go), if they run
}

// raiseNofile raises RLIMIT_NOFILE (soft and hard) to want, or if that is
// not permitted (no CAP_SYS_RESOURCE) the soft limit to the hard one, and
// returns the limit in force. Children inherit it: syscall.Setrlimit also
// stops Go from restoring the original soft limit in children.
func raiseNofile(want uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Max < want && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
		return want
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("raising RLIMIT_NOFILE: %v", err)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "peerbench: "+format+"\n", a...) }

func runBench(args []string) (code int) {
	began := time.Now()
	cfg, err := parseFlags(args)
	if err != nil {
		switch err {
		case flag.ErrHelp:
			return 0
		case errUsage:
		default:
			logf("%v", err)
		}
		return 2
	}
	if os.Geteuid() != 0 {
		logf("run as root: the benchmark creates network namespaces and TUN devices and may apt-get install peers")
		return 1
	}
	defer runExitHooks()
	defer crashed() // runs first: a panic here still cleans up
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	goSafe(func() {
		s := <-sigs
		logf("got %v: cleaning up", s)
		runExitHooks()
		os.Exit(130)
	})

	if needsLink(cfg.tests) {
		for _, ns := range []string{nsCli, nsUp} {
			if nsExists(ns) {
				logf("network namespace %s already exists: refusing to start (delete it with `ip netns del %s` if it is a leftover)", ns, ns)
				return 1
			}
		}
	}
	b := &bench{cfg: cfg, res: newResults(), nofile: raiseNofile(1 << 16)}
	if b.exe, err = os.Executable(); err != nil {
		logf("%v", err)
		return 1
	}
	if b.tmp, err = os.MkdirTemp("", "warmport-peerbench-"); err != nil {
		logf("%v", err)
		return 1
	}
	atExit(func() { os.RemoveAll(b.tmp) })
	os.Setenv("WARMPORT_STATE_DIR", filepath.Join(b.tmp, "state")) // keep the user's state dir clean

	b.tools = findTools(b.tmp, cfg.warmportBin, cfg.beforeBin, cfg.noInstall)
	for _, k := range sortedKeys(b.tools.missing) {
		logf("skipping %s: %s", k, b.tools.missing[k])
	}
	if err := b.startUpstreams(); err != nil {
		logf("%v", err)
		return 1
	}
	if err := b.startSSH(); err != nil {
		logf("%v", err)
		return 1
	}
	header := b.header()
	rounds := b.runRounds(began)

	out := os.Stdout
	fmt.Fprintln(out)
	for _, h := range header {
		fmt.Fprintln(out, h)
	}
	ri := runInfo{rounds: rounds, bulkTime: cfg.bulkTime, connTime: cfg.connTime, clients: cfg.clients,
		ttfbClients: cfg.ttfbClients, idleConns: cfg.idleConns}
	tables := append(b.res.tables(ri, b.rowNames()), b.res.sshTables(ri, b.rowNames())...)
	for _, t := range tables {
		fmt.Fprintln(out)
		fmt.Fprint(out, t.plain())
	}
	fmt.Fprintf(out, "\n----- Markdown -----\n")
	for _, t := range tables {
		fmt.Fprintln(out)
		fmt.Fprint(out, t.markdown())
	}
	fmt.Fprintf(out, "\ntotal time %s; load average after: %s (other work on the machine skews every number)\n",
		time.Since(began).Round(time.Second), loadavg())
	return 0
}

// startUpstreams starts the loopback sink, echo and HTTP server and, for the ttfb test,
// the link and the echo inside wpb-up.
func (b *bench) startUpstreams() error {
	var err error
	if b.sink, err = startServer("127.0.0.1:0", sink); err != nil {
		return err
	}
	if b.echo, err = startServer("127.0.0.1:0", echo); err != nil {
		return err
	}
	if b.http, err = startServer("127.0.0.1:0", httpOK); err != nil {
		return err
	}
	atExit(func() { b.sink.close(); b.echo.close(); b.http.close() })
	if err := b.startTLSUpstreams(); err != nil {
		return err
	}
	if !needsLink(b.cfg.tests) {
		return nil
	}
	logf("creating network namespaces %s and %s joined by a %s-each-way TUN relay", nsCli, nsUp, oneWay)
	l, err := startLink(b.exe)
	if err != nil {
		return err
	}
	atExit(func() { killAll(); l.close() }) // nothing may be left inside the namespaces
	up, err := launch("upstream echo", []string{"ip", "netns", "exec", nsUp, b.exe, "__serve", upIP + ":7001"}, readyServeRE)
	if err != nil {
		return err
	}
	if b.nsEcho, err = up.readyLine(10 * time.Second); err != nil {
		return err
	}
	// Check the link: a direct new client needs two round trips (handshake, then the byte).
	out, err := runHelper("link check", []string{"ip", "netns", "exec", nsCli, b.exe, "__ttfb", "-addr", b.nsEcho, "-n", "5"}, time.Minute, nil)
	var rep ttfbReport
	if err == nil {
		err = json.Unmarshal(out, &rep)
	}
	if err != nil || len(rep.MS) == 0 {
		return fmt.Errorf("the link does not work: %v %s", err, rep.FirstError)
	}
	want := float64(4*oneWay) / float64(time.Millisecond)
	logf("link check: direct 1-byte request/reply %s -> %s: median %.2f ms of %d (two round trips: want about %.0f ms)",
		nsCli, b.nsEcho, median(rep.MS), len(rep.MS), want)
	if m := median(rep.MS); m < want*0.9 || m > want*1.5 {
		logf("WARNING: the link's round trip is off; the ttfb numbers will be too")
	}
	return b.startNSTLSEchoes()
}

// needsLink: the time-to-first-byte tests run across the link.
func needsLink(tests []string) bool {
	return slices.ContainsFunc(tests, func(t string) bool {
		return t == testTTFB || t == testSSHTTFB || t == testTLSTTFB || t == testTLSTTFB12
	})
}

// test is one of the four measurements with the peers it compares.
type test struct {
	name  string
	peers []peer
	run   func(peer) (map[string]float64, error)
}

func (b *bench) testList() []test {
	all := []test{
		{testBulk, []peer{pDirect, pWarmport, pSocat, pProxyd, pHAProxy}, b.bulk},
		{testConns, []peer{pDirect, pWarmport, pReuse, pSocat, pProxyd, pHAProxy}, b.conns},
		{testTTFB, []peer{pDirect, pWarm0, pWarm2, pSocat, pProxyd, pHAProxy}, b.ttfb},
		{testIdle, []peer{pWarmport, pSocat, pProxyd, pHAProxy}, b.idle},
	}
	all = append(all, b.sshTestList()...)
	all = append(all, b.tlsTests()...)
	var out []test
	for _, t := range all {
		if !slices.Contains(b.cfg.tests, t.name) {
			continue
		}
		t.peers = slices.DeleteFunc(t.peers, func(p peer) bool { return !b.cfg.peerKinds[p.kind] || !b.tools.has(p.kind) })
		if b.cfg.beforeBin != "" {
			t.peers = withBefore(t.peers)
		}
		out = append(out, t)
	}
	return out
}

// withBefore puts after each warmport peer its twin that runs the
// -warmport-before binary, so the round-robin interleaves the two builds.
func withBefore(peers []peer) []peer {
	var out []peer
	for _, p := range peers {
		out = append(out, p)
		if p.kind == kindWarmport {
			p.name, p.before = p.name+" (before)", true
			out = append(out, p)
		}
	}
	return out
}

// rowNames lists each test's peers in display order.
func (b *bench) rowNames() map[string][]string {
	m := map[string][]string{}
	for _, t := range b.testList() {
		for _, p := range t.peers {
			m[t.name] = append(m[t.name], p.name)
		}
	}
	return m
}

// runRounds runs every test on every peer, round after round, each round
// starting the peers at a different one (round-robin), and returns how many
// rounds ran: a round that would end past the budget is not started.
func (b *bench) runRounds(began time.Time) int {
	tests := b.testList()
	var last time.Duration
	for r := 0; r < b.cfg.rounds; r++ {
		if r > 0 && time.Since(began)+last*11/10 > b.cfg.budget {
			logf("stopping after %d rounds: another one would end past the %s budget", r, b.cfg.budget)
			return r
		}
		start := time.Now()
		for _, t := range tests {
			n := len(t.peers)
			for i := 0; i < n && !exiting(); i++ {
				p := t.peers[(i+r)%n]
				t0 := time.Now()
				m, err := t.run(p)
				if err != nil {
					b.res.fail(t.name, p.name, err)
					logf("round %d/%d %-5s %-22s FAILED: %v", r+1, b.cfg.rounds, t.name, p.name, err)
					continue
				}
				b.res.add(t.name, p.name, m)
				logf("round %d/%d %-5s %-22s %s (%s)", r+1, b.cfg.rounds, t.name, p.name, fmtMetrics(m),
					time.Since(t0).Round(10*time.Millisecond))
			}
		}
		last = time.Since(start)
	}
	return b.cfg.rounds
}

func fmtMetrics(m map[string]float64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// header describes the machine, the mode and the peers.
func (b *bench) header() []string {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	mode := fmt.Sprintf("full (%d rounds)", b.cfg.rounds)
	if b.cfg.quick {
		mode = fmt.Sprintf("quick (%d rounds of %s windows)", b.cfg.rounds, b.cfg.bulkTime)
		if b.cfg.rounds == 1 {
			mode = fmt.Sprintf("quick (1 round of %s windows: single samples)", b.cfg.bulkTime)
		}
	}
	h := []string{
		fmt.Sprintf("warmport benchmark, %s, host %s, Linux %s, %d CPUs (%s), %s",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), host, strings.TrimSpace(string(kernel)),
			runtime.NumCPU(), cpuModel(), runtime.Version()),
		"mode: " + mode + "; each measurement starts its forwarder fresh; peers interleaved round-robin",
		fmt.Sprintf("open files limit %d (HAProxy maxconn %d); load average before: %s", b.nofile, b.haproxyMaxconn(), loadavg()),
	}
	for _, v := range b.tools.versions {
		h = append(h, "  "+v)
	}
	return h
}

// loadavg is the 1, 5 and 15 minute load average.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
