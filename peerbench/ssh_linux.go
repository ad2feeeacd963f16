package main

// The SSH tests: warmport --via against OpenSSH's own ways to reach a
// target behind a bastion. Two real sshd run as the bastion: one on
// 127.0.0.1 (bulk, short connections, healing) and one in wpb-up behind the
// 10 ms RTT link (time to first byte, where the client and its forwarder
// sit in wpb-cli). The peers:
//
//   - ssh -L (established): ssh -N -L over one connection opened before
//     the clients come; each client costs a channel open and the bastion's
//     connect to the target.
//   - ssh -W per client: a fresh ssh -W (what a ProxyCommand or ssh -J
//     costs) per client: TCP, key exchange, auth and a channel each time.
//   - warmport --via --warm 0: its warm SSH tunnel (four connections, each
//     new channel on the quietest), a channel per client.
//   - warmport --via: the same with warm channels (the default --warm 2).
//
// The client key, host key and known_hosts are generated in the run's temp
// dir; no agent is used (SSH_AUTH_SOCK is cleared) and no ssh_config read.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	testSSHTTFB  = "ssh-ttfb"
	testSSHBulk  = "ssh-bulk"
	testSSHConns = "ssh-conns"
	testSSHHeal  = "ssh-heal"

	kindSSH = "ssh" // OpenSSH's client

	mHeal = "heal s"

	sshNSPort = 2222 // the bastion's port inside wpb-up
	// sshOutage is how long the bastion stays down in the healing test: a
	// restart, not an instant bounce, so the back-off is part of the number.
	sshOutage = 2 * time.Second
)

var sshTests = []string{testSSHTTFB, testSSHBulk, testSSHConns, testSSHHeal}

var (
	pSSHL   = peer{name: "ssh -L (established)", kind: kindSSH}
	pSSHW   = peer{name: "ssh -W per client", kind: kindSSH, flags: []string{"-W"}}
	pVia0   = peer{name: "warmport --via --warm 0", kind: kindWarmport, flags: []string{"--warm", "0"}}
	pVia    = peer{name: "warmport --via", kind: kindWarmport}
	pVia4   = peer{name: "warmport --via --ssh-conns 4", kind: kindWarmport, flags: []string{"--ssh-conns", "4"}}
	sshRows = map[string][]peer{
		testSSHTTFB:  {pSSHL, pSSHW, pVia0, pVia, pVia4},
		testSSHBulk:  {pSSHL, pVia},
		testSSHConns: {pSSHL, pVia, pVia4},
		testSSHHeal:  {pVia},
	}
)

// sshTestList is the SSH tests asked for, in testList's shape.
func (b *bench) sshTestList() []test {
	run := map[string]func(peer) (map[string]float64, error){
		testSSHTTFB: b.sshTTFB, testSSHBulk: b.sshBulk, testSSHConns: b.sshConns, testSSHHeal: b.sshHeal,
	}
	var out []test
	for _, name := range sshTests {
		out = append(out, test{name, sshRows[name], run[name]})
	}
	return out
}

// sshRig is the bastions and the client's credentials.
type sshRig struct {
	dir, key, knownHosts, user, hostPub string
	lo, ns                              *sshd
}

type sshd struct {
	conf, ns, addr string // addr: HOST:PORT, as the client dials it
	p              *proc
}

func (b *bench) wantsSSH() bool {
	for _, t := range b.cfg.tests {
		if strings.HasPrefix(t, "ssh-") {
			return true
		}
	}
	return false
}

// startSSH makes the keys and starts the bastions the SSH tests need.
func (b *bench) startSSH() error {
	if !b.wantsSSH() {
		return nil
	}
	for _, bin := range []string{"ssh", "ssh-keygen", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("the SSH tests need %s (Debian: openssh-client, openssh-server)", bin)
		}
	}
	os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	os.Setenv("SSH_AUTH_SOCK", "")  // the clients use the run's key only
	u, err := user.Current()
	if err != nil {
		return err
	}
	r := &sshRig{dir: filepath.Join(b.tmp, "ssh"), user: u.Username}
	os.MkdirAll(r.dir, 0o700)
	r.key = filepath.Join(r.dir, "id_ed25519")
	r.knownHosts = filepath.Join(r.dir, "known_hosts")
	for _, f := range []string{r.key, filepath.Join(r.dir, "host_ed25519")} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(r.dir, "host_ed25519.pub"))
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	r.hostPub = f[0] + " " + f[1]
	loPort := b.freePort("")
	kh := fmt.Sprintf("[127.0.0.1]:%d %s\n[%s]:%d %s\n", loPort, r.hostPub, upIP, sshNSPort, r.hostPub)
	if err := os.WriteFile(r.knownHosts, []byte(kh), 0o600); err != nil {
		return err
	}
	b.sshRig = r
	if r.lo, err = r.startSSHD("", "127.0.0.1", loPort); err != nil {
		return err
	}
	if slices.Contains(b.cfg.tests, testSSHTTFB) {
		if r.ns, err = r.startSSHD(nsUp, upIP, sshNSPort); err != nil {
			return err
		}
	}
	return nil
}

var sshdReadyRE = regexp.MustCompile(`Server listening on (\S+)`)

// startSSHD writes a config for host:port (inside ns if set) and starts sshd.
func (r *sshRig) startSSHD(ns, host string, port int) (*sshd, error) {
	s := &sshd{ns: ns, addr: fmt.Sprintf("%s:%d", host, port), conf: filepath.Join(r.dir, fmt.Sprintf("sshd_config-%d", port))}
	auth, err := os.ReadFile(r.key + ".pub")
	if err != nil {
		return nil, err
	}
	authFile := filepath.Join(r.dir, "authorized_keys")
	if err := os.WriteFile(authFile, auth, 0o600); err != nil {
		return nil, err
	}
	conf := strings.Join([]string{
		"Port " + strconv.Itoa(port), "ListenAddress " + host,
		"HostKey " + filepath.Join(r.dir, "host_ed25519"), "AuthorizedKeysFile " + authFile,
		"PidFile " + filepath.Join(r.dir, fmt.Sprintf("sshd-%d.pid", port)),
		"StrictModes no", "UsePAM no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
		"KbdInteractiveAuthentication no", "AllowTcpForwarding yes",
		// The short-connection test opens up to 50 channels at once, and
		// a run makes many logins (warmport's four per start, ssh -W's
		// one per client).
		"MaxStartups 100",
	}, "\n") + "\n"
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return s, s.start()
}

func (s *sshd) start() error {
	argv := []string{"/usr/sbin/sshd", "-D", "-e", "-o", "LogLevel=INFO", "-f", s.conf}
	if s.ns != "" {
		argv = append([]string{"ip", "netns", "exec", s.ns}, argv...)
	}
	p, err := launch("sshd "+s.addr, argv, sshdReadyRE)
	if err != nil {
		return err
	}
	if _, err := p.readyLine(10 * time.Second); err != nil {
		p.kill()
		return err
	}
	s.p = p
	atExit(s.kill)
	return nil
}

// kill ends sshd and the processes it forked per connection (each in a
// session of its own, so not in its group), as a crash would.
func (s *sshd) kill() {
	if s.p == nil {
		return
	}
	syscall.Kill(s.p.pid(), syscall.SIGSTOP) // forks nothing while we look
	for _, pid := range tree(s.p.pid()) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.p.kill()
	s.p = nil
}

// sshArgs are ssh's options for the run's key and known_hosts, no config.
func (r *sshRig) sshArgs(s *sshd) []string {
	host, port, _ := strings.Cut(s.addr, ":")
	return []string{"-F", "none", "-i", r.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + r.knownHosts, "-o", "StrictHostKeyChecking=yes", "-p", port, r.user + "@" + host}
}

// viaFlags are warmport's flags to reach target through s.
func (r *sshRig) viaFlags(s *sshd) []string {
	return []string{"--via", r.user + "@" + s.addr, "--identity", r.key, "--known-hosts", r.knownHosts, "--ssh-config", "none"}
}

// startPeer starts p to reach target through s: ssh -L, or warmport --via.
func (b *bench) startSSHPeer(p peer, ns string, s *sshd, target string, jsonOut bool) (*forwarder, error) {
	if p.kind == kindWarmport {
		p.flags = append(b.sshRig.viaFlags(s), p.flags...)
		return b.start(p, ns, target, jsonOut)
	}
	port := b.freePort(ns)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	argv := append([]string{"ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", listen + ":" + target}, b.sshRig.sshArgs(s)...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	pr, err := launch(p.name, argv, nil)
	if err != nil {
		return nil, err
	}
	f := &forwarder{addr: listen, proc: pr}
	if ns == "" {
		// ssh listens for -L only once it has logged in: the connection is
		// established when the port answers.
		if err := pr.pollConnect(listen, 10*time.Second); err != nil {
			pr.kill()
			return nil, err
		}
	}
	return f, nil
}

// sshTTFB: sequential new clients in wpb-cli to the echo in wpb-up, through
// the bastion in wpb-up, across the link.
func (b *bench) sshTTFB(p peer) (map[string]float64, error) {
	r := b.sshRig
	var argv []string
	var f *forwarder
	if p.name == pSSHW.name {
		argv = append([]string{"ip", "netns", "exec", nsCli, b.exe, "__sshw", "-n", strconv.Itoa(b.cfg.ttfbClients / 4),
			"-target", b.nsEcho, "--"}, r.sshArgs(r.ns)...)
	} else {
		var err error
		if f, err = b.startSSHPeer(p, nsCli, r.ns, b.nsEcho, p.kind == kindWarmport); err != nil {
			return nil, err
		}
		defer f.stop()
		argv = []string{"ip", "netns", "exec", nsCli, b.exe, "__ttfb", "-addr", f.addr,
			"-n", strconv.Itoa(b.cfg.ttfbClients), "-settle", "200ms"}
		if p.kind != kindWarmport { // warmport said it listens; a probe would count as a client
			argv = append(argv, "-poll", "10s")
		}
	}
	return b.ttfbRun(p, f, argv)
}

// sshBulk: one stream through the loopback bastion to the sink. CPU is the
// client side's: ssh's or warmport's (sshd's is the bastion's).
func (b *bench) sshBulk(p peer) (map[string]float64, error) {
	return b.bulkThrough(p, func() (*forwarder, error) {
		return b.startSSHPeer(p, "", b.sshRig.lo, b.sink.addr(), false)
	})
}

// sshConns: the short-connection test through the loopback bastion.
func (b *bench) sshConns(p peer) (map[string]float64, error) {
	return b.connsThrough(p, func() (*forwarder, error) {
		return b.startSSHPeer(p, "", b.sshRig.lo, b.http.addr(), p.kind == kindWarmport)
	})
}

// sshHeal: warmport --via to the loopback bastion; the bastion is killed
// (with its connection processes) and started again after sshOutage; the
// number is the seconds from it listening again to the next client served
// (an HTTP exchange, retried at once on failure).
func (b *bench) sshHeal(p peer) (map[string]float64, error) {
	s := b.sshRig.lo
	f, err := b.startSSHPeer(p, "", s, b.http.addr(), false)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	resp := make([]byte, len(httpReply))
	dial := plainDialer(p, f)
	if err := exchange(dial, resp); err != nil {
		return nil, fmt.Errorf("before the outage: %w", err)
	}
	s.kill()
	time.Sleep(sshOutage)
	if err := s.start(); err != nil {
		return nil, err
	}
	back := time.Now()
	deadline := back.Add(time.Minute)
	for {
		err := exchange(dial, resp)
		if err == nil {
			break
		}
		if !f.proc.alive() {
			return nil, f.proc.failure()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no client served %s after sshd restarted: %w", time.Minute, err)
		}
		time.Sleep(5 * time.Millisecond) // no hot loop while the forwarder heals
	}
	return map[string]float64{mHeal: time.Since(back).Seconds()}, nil
}

// runSSHWClient (__sshw, inside wpb-cli) runs n sequential ssh -W clients,
// each timed from before ssh starts until the 1-byte echo of its 1-byte
// request has come back through ssh's stdout. It prints a ttfbReport.
func runSSHWClient(args []string) int {
	fs := flag.NewFlagSet("__sshw", flag.ContinueOnError)
	n := fs.Int("n", 50, "number of sequential clients")
	target := fs.String("target", "", "HOST:PORT the bastion connects to")
	if err := fs.Parse(args); err != nil || *target == "" || *n < 1 || fs.NArg() == 0 {
		return 2
	}
	var rep ttfbReport
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		d, err := sshWOnce(*target, fs.Args())
		if err != nil {
			rep.Failed++
			if rep.FirstError == "" {
				rep.FirstError = err.Error()
			}
			continue
		}
		rep.MS = append(rep.MS, float64(d)/float64(time.Millisecond))
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

func sshWOnce(target string, sshArgs []string) (time.Duration, error) {
	t0 := time.Now()
	cmd := exec.Command("ssh", append([]string{"-W", target}, sshArgs...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	timer := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	if _, err := in.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(out, b[:]); err != nil {
		return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	d := time.Since(t0)
	if b[0] != 'x' {
		return 0, errors.New("wrong reply")
	}
	return d, nil
}

// sshTables are the SSH tests' tables, with the ratios the targets are
// stated in.
func (r *results) sshTables(ri runInfo, peers map[string][]string) []*table {
	var out []*table
	if ps := peers[testSSHTTFB]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("SSH time to first byte: sequential new clients (%d; %d for ssh -W), client-to-bastion link 10 ms RTT, %s",
				ri.ttfbClients, ri.ttfbClients/4, ri.roundsText()),
			headers: []string{"peer", "p50 ms", "p90 ms", "p99 ms", "p50 vs ssh -L", "p50 vs ssh -W", "pool hits"},
		}
		l, w := r.med(testSSHTTFB, pSSHL.name, mP50), r.med(testSSHTTFB, pSSHW.name, mP50)
		for _, p := range ps {
			p50 := r.med(testSSHTTFB, p, mP50)
			t.addRow(p, num(p50, 2), num(r.med(testSSHTTFB, p, mP90), 2), num(r.med(testSSHTTFB, p, mP99), 2),
				ratio(p50, l), ratio(p50, w), hitRate(r.sum(testSSHTTFB, p, mHits), r.sum(testSSHTTFB, p, mMisses)))
		}
		t.notes = r.notes(testSSHTTFB, ps)
		out = append(out, t)
	}
	if ps := peers[testSSHBulk]; len(ps) > 0 {
		t := &table{
			title:   fmt.Sprintf("SSH bulk: one stream -> forwarder -> sshd on loopback -> sink, %s measured, %s; CPU is the client side's", ri.bulkTime, ri.roundsText()),
			headers: []string{"peer", mMiBps, "vs ssh -L", mCPUPct, mCPUPerGiB, "CPU/GiB vs ssh -L", mHostCPU},
		}
		base, baseCPU := r.med(testSSHBulk, pSSHL.name, mMiBps), r.med(testSSHBulk, pSSHL.name, mCPUPerGiB)
		for _, p := range ps {
			v, c := r.med(testSSHBulk, p, mMiBps), r.med(testSSHBulk, p, mCPUPerGiB)
			t.addRow(p, num(v, 0), ratio(v, base), num(r.med(testSSHBulk, p, mCPUPct), 0), num(c, 3), ratio(c, baseCPU),
				num(r.med(testSSHBulk, p, mHostCPU), 0))
		}
		t.notes = r.notes(testSSHBulk, ps)
		out = append(out, t)
	}
	if ps := peers[testSSHConns]; len(ps) > 0 {
		t := &table{
			title:   fmt.Sprintf("SSH short connections: %d clients, one HTTP/1.1 GET each, through sshd on loopback, %s measured, %s", ri.clients, ri.connTime, ri.roundsText()),
			headers: []string{"peer", mConnsPerSec, "vs ssh -L", mCPUPerConn, "failed conns", mHostCPU, "pool hits"},
		}
		base := r.med(testSSHConns, pSSHL.name, mConnsPerSec)
		for _, p := range ps {
			v := r.med(testSSHConns, p, mConnsPerSec)
			t.addRow(p, num(v, 0), ratio(v, base), num(r.med(testSSHConns, p, mCPUPerConn), 1), num(r.sum(testSSHConns, p, mFailed), 0),
				num(r.med(testSSHConns, p, mHostCPU), 0), hitPct(r.sum(testSSHConns, p, mHits), r.sum(testSSHConns, p, mMisses)))
		}
		t.notes = r.notes(testSSHConns, ps)
		out = append(out, t)
	}
	if ps := peers[testSSHHeal]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("SSH healing: sshd killed with its connections, back after %s; seconds from it listening to the next client served, %s (ssh -L does not heal: it exits)",
				sshOutage, ri.roundsText()),
			headers: []string{"peer", mHeal},
		}
		for _, p := range ps {
			t.addRow(p, num(r.med(testSSHHeal, p, mHeal), 2))
		}
		t.notes = r.notes(testSSHHeal, ps)
		out = append(out, t)
	}
	return out
}
