package main

// The TLS and Unix-socket tests: warmport --tls against stunnel (client
// mode) and socat's OPENSSL address, and warmport's unix: ends against
// socat's UNIX addresses. Registered in main_linux.go (testList, the hidden
// __servetls subcommand) and report.go (tlsTables).

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// tlsBench is what the TLS and Unix tests share: the generated PKI, the
// TLS upstreams on loopback and in wpb-up, and the Unix sink.
type tlsBench struct {
	pki                 *benchPKI
	sink, http, echo    *server // TLS upstreams on 127.0.0.1
	unixSink            *server // a plain sink on a Unix socket
	unixSinkPath        string
	nsEcho13, nsEcho12  string // TLS echoes in wpb-up
	serverCfg, clientCf *tls.Config
}

// startTLSUpstreams starts the loopback TLS upstreams and the Unix sink,
// if a test of this file runs.
func (b *bench) startTLSUpstreams() error {
	if !b.runsAny(tlsTestNames...) {
		return nil
	}
	pki, err := newBenchPKI(b.tmp)
	if err != nil {
		return err
	}
	t := &tlsBench{pki: pki}
	b.tls = t
	t.serverCfg, err = pki.serverConfig(0)
	if err != nil {
		return err
	}
	t.clientCf = pki.clientConfig()
	wrap := func(h func(*server, net.Conn)) func(*server, net.Conn) {
		return func(s *server, c net.Conn) { h(s, tls.Server(c, t.serverCfg)) }
	}
	if t.sink, err = startServer("127.0.0.1:0", wrap(sink)); err != nil {
		return err
	}
	if t.http, err = startServer("127.0.0.1:0", wrap(httpOK)); err != nil {
		return err
	}
	if t.echo, err = startServer("127.0.0.1:0", wrap(echo)); err != nil {
		return err
	}
	t.unixSinkPath = filepath.Join(b.tmp, "sink.sock")
	ln, err := net.Listen("unix", t.unixSinkPath)
	if err != nil {
		return err
	}
	t.unixSink = serveListener(ln, sink)
	atExit(func() { t.sink.close(); t.http.close(); t.echo.close(); t.unixSink.close() })
	return nil
}

// startNSTLSEchoes starts the TLS 1.3 and TLS 1.2-only echoes in wpb-up.
func (b *bench) startNSTLSEchoes() error {
	if !b.runsAny(testTLSTTFB, testTLSTTFB12) {
		return nil
	}
	for _, s := range []struct {
		port string
		max  string
		addr *string
	}{{"7002", "1.3", &b.tls.nsEcho13}, {"7003", "1.2", &b.tls.nsEcho12}} {
		up, err := launch("upstream TLS "+s.max+" echo", []string{"ip", "netns", "exec", nsUp, b.exe, "__servetls",
			upIP + ":" + s.port, b.tls.pki.certFile, b.tls.pki.keyFile, s.max}, readyServeRE)
		if err != nil {
			return err
		}
		if *s.addr, err = up.readyLine(10 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) runsAny(names ...string) bool {
	for _, t := range b.cfg.tests {
		for _, n := range names {
			if t == n {
				return true
			}
		}
	}
	return false
}

// runServeTLS is __servetls ADDR CERT KEY MAXVERSION: a TLS echo (the
// ttfb upstream) until SIGTERM/SIGINT.
func runServeTLS(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: peerbench __servetls ADDR CERT KEY 1.2|1.3")
		return 2
	}
	cert, err := tls.LoadX509KeyPair(args[1], args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerbench servetls: %v\n", err)
		return 1
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if args[3] == "1.2" {
		cfg.MaxVersion = tls.VersionTLS12
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	s, err := startServer(args[0], func(s *server, c net.Conn) { echo(s, tls.Server(c, cfg)) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerbench servetls: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "READY %s\n", s.addr())
	<-sigs
	s.close()
	return 0
}

// tlsTests are this file's tests with their peers.
func (b *bench) tlsTests() []test {
	if b.tls == nil {
		return nil
	}
	ca := b.tls.pki.caFile
	wpTLS := []string{"--tls", "--tls-ca", ca}
	directTLS := peer{name: directTLSName, kind: kindDirect}
	stunnel := peer{name: stunnelName, kind: kindStunnel, custom: b.stunnelArgv}
	socatTLS := peer{name: socatTLSName, kind: kindSocat, custom: socatTLSArgv(ca)}
	wp0 := peer{name: "warmport --tls --warm 0", kind: kindWarmport, flags: append(wpTLS, "--warm", "0")}
	wp := peer{name: "warmport --tls", kind: kindWarmport, flags: wpTLS}
	ttfb := []peer{directTLS, stunnel, socatTLS, wp0, wp}
	return []test{
		{testTLSTTFB, ttfb, func(p peer) (map[string]float64, error) { return b.ttfbTo(p, b.tls.nsEcho13) }},
		{testTLSTTFB12, ttfb, func(p peer) (map[string]float64, error) { return b.ttfbTo(p, b.tls.nsEcho12) }},
		{testTLSBulk, []peer{directTLS, wp, stunnel, socatTLS}, b.tlsBulk},
		{testTLSConns, []peer{directTLS, wp, stunnel, socatTLS}, b.tlsConns},
		{testTLSIdle, []peer{wp, stunnel, socatTLS}, b.tlsIdle},
		{testUnixBulk, []peer{
			{name: "unix->tcp warmport", kind: kindWarmport, custom: b.warmportUnixArgv},
			{name: "unix->tcp socat", kind: kindSocat, custom: b.socatUnixArgv},
			{name: "tcp->unix warmport", kind: kindWarmport},
			{name: "tcp->unix socat", kind: kindSocat, custom: socatToUnixArgv},
		}, b.unixBulk},
		{testUnixIdle, []peer{
			{name: "unix->tcp warmport", kind: kindWarmport, custom: b.warmportUnixArgv},
			{name: "unix->tcp socat", kind: kindSocat, custom: b.socatUnixArgv},
		}, func(p peer) (map[string]float64, error) { return b.measureIdle(p, b.echo.addr(), b.cfg.idleConns) }},
	}
}

// stunnelArgv writes a client-mode service: plaintext on listen, TLS to
// upstream, verified against the bench CA for localhost (and sent as SNI).
func (b *bench) stunnelArgv(port int, listen, upstream string) ([]string, string, error) {
	b.cfgN++
	path := filepath.Join(b.tmp, fmt.Sprintf("stunnel-%d.conf", b.cfgN))
	conf := fmt.Sprintf("foreground = yes\npid =\nsyslog = no\ndebug = 3\n[bench]\nclient = yes\naccept = %s\nconnect = %s\n"+
		"verifyChain = yes\nCAfile = %s\ncheckHost = localhost\nsni = localhost\n", listen, upstream, b.tls.pki.caFile)
	return []string{b.tools.stunnel, path}, listen, os.WriteFile(path, []byte(conf), 0o600)
}

func socatTLSArgv(ca string) func(int, string, string) ([]string, string, error) {
	return func(port int, listen, upstream string) ([]string, string, error) {
		return []string{"socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096", port),
			"OPENSSL:" + upstream + ",cafile=" + ca + ",commonname=localhost,verify=1"}, listen, nil
	}
}

func (b *bench) warmportUnixArgv(port int, listen, upstream string) ([]string, string, error) {
	path := b.unixPath()
	return []string{b.tools.warmport, "forward", "-q", "unix:" + path, upstream}, "unix:" + path, nil
}

func (b *bench) socatUnixArgv(port int, listen, upstream string) ([]string, string, error) {
	path := b.unixPath()
	return []string{"socat", "UNIX-LISTEN:" + path + ",fork,backlog=4096", "TCP:" + upstream}, "unix:" + path, nil
}

func socatToUnixArgv(port int, listen, upstream string) ([]string, string, error) {
	return []string{"socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096", port),
		"UNIX-CONNECT:" + strings.TrimPrefix(upstream, "unix:")}, listen, nil
}

func (b *bench) unixPath() string {
	b.cfgN++
	return filepath.Join(b.tmp, fmt.Sprintf("l%d.sock", b.cfgN))
}

// tryStartCustom starts a peer whose command line its custom func makes.
func (b *bench) tryStartCustom(p peer, ns, upstream string) (*forwarder, error) {
	port := b.freePort(ns)
	argv, listen, err := p.custom(port, fmt.Sprintf("127.0.0.1:%d", port), upstream)
	if err != nil {
		return nil, err
	}
	if p.kind == kindSocat {
		argv[0] = b.tools.socat
	}
	var watch *regexp.Regexp
	if p.kind == kindWarmport {
		watch = readyRE
	}
	return launchPeer(p, ns, argv, listen, watch)
}

// pollConnectAny is pollConnect for a TCP address or unix:PATH.
func pollConnectAny(pr *proc, addr string, timeout time.Duration) error {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return pr.pollConnect(addr, timeout)
	}
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !pr.alive() {
			return pr.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %s: %v", addr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialer returns how a client of the test reaches f: a TLS client of its
// own for direct TLS, else plaintext TCP, or a Unix socket for unix:PATH.
func (b *bench) dialer(p peer, f *forwarder) func() (net.Conn, error) {
	return func() (net.Conn, error) {
		if p.name == directTLSName {
			d := &net.Dialer{Timeout: 5 * time.Second}
			return tls.DialWithDialer(d, "tcp", f.addr, b.tls.clientCf)
		}
		if path, ok := strings.CutPrefix(f.addr, "unix:"); ok {
			return net.DialTimeout("unix", path, 5*time.Second)
		}
		return net.DialTimeout("tcp", f.addr, 5*time.Second)
	}
}

func (b *bench) tlsBulk(p peer) (map[string]float64, error) {
	f, err := b.start(p, "", b.tls.sink.addr(), false)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	return b.measureBulk(f, b.dialer(p, f), b.tls.sink)
}

func (b *bench) unixBulk(p peer) (map[string]float64, error) {
	sink, upstream := b.sink, b.sink.addr()
	if strings.HasPrefix(p.name, "tcp->unix") {
		sink, upstream = b.tls.unixSink, "unix:"+b.tls.unixSinkPath
	}
	f, err := b.start(p, "", upstream, false)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	return b.measureBulk(f, b.dialer(p, f), sink)
}

func (b *bench) tlsConns(p peer) (map[string]float64, error) {
	return b.measureConns(p, b.tls.http.addr(), b.dialer)
}

func (b *bench) tlsIdle(p peer) (map[string]float64, error) {
	return b.measureIdle(p, b.tls.echo.addr(), min(b.cfg.idleConns, tlsIdleConns))
}

// ttfbTo is the ttfb test to upstream; a direct TLS client makes its own
// handshake, without a session cache, as a new client does.
func (b *bench) ttfbTo(p peer, upstream string) (map[string]float64, error) {
	var extra []string
	if p.name == directTLSName {
		extra = []string{"-tls-ca", b.tls.pki.caFile, "-tls-name", "localhost"}
	}
	return b.measureTTFB(p, upstream, extra)
}

// findStunnel finds stunnel4 (Debian's stunnel4 package).
func (t *tools) findStunnel() {
	for _, bin := range []string{"stunnel4", "stunnel"} {
		if p, err := exec.LookPath(bin); err == nil {
			t.stunnel = p
			out, _ := exec.Command(p, "-version").CombinedOutput()
			v := "?"
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "stunnel ") {
					v = strings.TrimSpace(l)
					break
				}
			}
			t.versions = append(t.versions, "stunnel: "+v)
			return
		}
	}
	t.missing[kindStunnel] = "stunnel4 not installed (Debian package stunnel4)"
}

// tlsClientConfig is the ttfb client's -tls-ca/-tls-name: a config without
// a session cache, so every client makes a full handshake.
func tlsClientConfig(caFile, name string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, ServerName: name}, nil
}
