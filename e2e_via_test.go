package main

// --via end to end: the real binary through a real OpenSSH sshd the test
// starts (e2e_via_helpers_test.go), to targets on 127.0.0.1 that sshd dials.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestViaUsageErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if err := os.WriteFile(key, []byte("not checked before connecting"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"identity missing", []string{"--via", "bastion", "--identity", filepath.Join(dir, "nope")}, "--identity " + filepath.Join(dir, "nope") + ": no such file"},
		{"identity is a directory", []string{"--via", "bastion", "--identity", dir}, "not a regular file"},
		{"identity without via", []string{"--identity", key}, "--identity works only with --via"},
		{"known-hosts without via", []string{"--known-hosts", key}, "--known-hosts works only with --via"},
		{"ssh-conns without via", []string{"--ssh-conns", "4"}, "--ssh-conns works only with --via"},
		{"ssh-conns 0", []string{"--via", "bastion", "--ssh-conns", "0"}, "--ssh-conns 0: out of range: give 1 to 8"},
		{"ssh-conns 9", []string{"--via", "bastion", "--ssh-conns", "9"}, "--ssh-conns 9: out of range: give 1 to 8"},
		{"ssh-config missing", []string{"--via", "bastion", "--ssh-config", filepath.Join(dir, "nope")}, "--ssh-config"},
		{"reuse with via", []string{"--via", "bastion", "--reuse", "http"}, "--reuse http cannot be used with --via"},
		{"bad port", []string{"--via", "bastion:99999"}, "port must be a number"},
		{"host with a space", []string{"--via", "bad host"}, "no spaces"},
		{"empty user", []string{"--via", "@bastion"}, "empty user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"forward"}, tc.args...), "0", "db:5432")
			r := runWarmport(t, args...)
			if r.status != 2 {
				t.Errorf("exit status: got %d; want 2\nstderr: %s", r.status, r.stderr)
			}
			if ls := lines(r.stderr); len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") || !strings.Contains(ls[0], tc.want) {
				t.Errorf("stderr: got %q; want one line with %q", r.stderr, tc.want)
			}
		})
	}
}

// TestViaUnknownHostKey: an sshd whose key known_hosts lacks stops the
// start: exit 1, one line with the key's SHA256 fingerprint and the line
// that accepts it; nothing listens.
func TestViaUnknownHostKey(t *testing.T) {
	s := newViaSSHD(t)
	kh := filepath.Join(s.home, ".ssh", "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fp := strings.TrimSpace(runTool(t, "openssh-client", "ssh-keygen", "-l", "-E", "sha256", "-f", filepath.Join(s.Dir, "host_ed25519.pub")))
	fp = strings.Fields(fp)[1] // "256 SHA256:... test (ED25519)"
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward"}, s.args()...), "0", "127.0.0.1:1")...)
	r := p.wait(t, exitTimeout)
	if r.status != 1 {
		t.Fatalf("exit status: got %d; want 1\nstderr: %s", r.status, r.stderr)
	}
	ls := lines(r.stderr)
	if len(ls) != 1 {
		t.Fatalf("stderr: got %d lines; want 1:\n%s", len(ls), r.stderr)
	}
	accept := "echo '[127.0.0.1]:" + strings.TrimPrefix(s.Addr(), "127.0.0.1:") + " " + s.HostPub + "' >> " + kh
	for _, want := range []string{"warmport: ", fp, accept} {
		if !strings.Contains(ls[0], want) {
			t.Errorf("stderr: got %q; want it to contain %q", ls[0], want)
		}
	}
	if strings.Contains(r.stderr, "forwarding") {
		t.Errorf("stderr has a ready line; want none before the host key is trusted")
	}
}

// TestViaExactBytesHalfClose: requests of several sizes, each followed by
// the client's EOF, reach a target that answers only after that EOF (so
// the EOF crossed the channel as its EOF) and come back byte for byte; the
// JSON summary counts the application's bytes exactly and names the SSH
// server as via.
func TestViaExactBytesHalfClose(t *testing.T) {
	s := newViaSSHD(t)
	up := startUpstream(t, replyAfterEOF)
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward", "--json", "-q", "--warm", "2"}, s.args()...), "0", up.addr())...)
	addr := p.waitReady(t)
	p.waitPoolIdle(t, 2)
	sizes := []struct{ req, reply int64 }{{0, 0}, {8, 1}, {1000, 70_000}, {3 << 20, 5 << 20}}
	type done struct {
		client          string
		sent, got, want int64
	}
	var mu sync.Mutex
	var all []done
	var wg sync.WaitGroup
	for i, sz := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, sent, got, err := exchange(addr, [32]byte{byte(i)}, sz.req, sz.reply)
			if err != nil {
				t.Errorf("exchange %d (%d up, %d down): %v", i, sz.req, sz.reply, err)
				return
			}
			mu.Lock()
			all = append(all, done{client, sent, got, 32 + sz.reply})
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := p.stop(t)
	sum := parseSummary(t, r.stdout)
	var via struct {
		Via string `json:"via"`
	}
	decodeLast(t, r.stdout, &via)
	if via.Via != s.via() {
		t.Errorf("JSON via: got %q; want %q", via.Via, s.via())
	}
	for _, d := range all {
		rec := sum.record(t, d.client)
		if rec.BytesUp != d.sent || rec.BytesDown != d.want || d.got != d.want {
			t.Errorf("%s: bytes up/down: got %d/%d (client read %d); want %d/%d", d.client, rec.BytesUp, rec.BytesDown, d.got, d.sent, d.want)
		}
		if rec.ClosedBy != "client" && rec.ClosedBy != "remote" {
			t.Errorf("%s: closed_by: got %q; want client or remote", d.client, rec.ClosedBy)
		}
	}
	if sum.Pool.Hits == 0 {
		t.Errorf("pool hits: got 0; want the warm channels used")
	}
}

// TestViaBannerFirst: a target that speaks first (sshd itself, reached
// through itself) has its banner kept in a warm channel and handed to the
// client first, exactly once.
func TestViaBannerFirst(t *testing.T) {
	s := newViaSSHD(t)
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward", "--json", "-q", "--warm", "1"}, s.args()...), "0", s.Addr())...)
	addr := p.waitReady(t)
	p.waitPoolIdle(t, 1)
	c, err := dialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	client := c.LocalAddr().String()
	// An SSH client's own banner: sshd answers with its key exchange.
	io.WriteString(c, "SSH-2.0-test\r\n")
	buf := make([]byte, 4096)
	var got []byte
	for !strings.Contains(string(got), "\r\n") {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read the banner: got %q, %v", got, err)
		}
	}
	c.Close()
	line, _, _ := strings.Cut(string(got), "\r\n")
	if !strings.HasPrefix(line, "SSH-2.0-OpenSSH") {
		t.Errorf("first line: got %q; want sshd's banner", line)
	}
	if n := strings.Count(string(got), "SSH-2.0-"); n != 1 {
		t.Errorf("banners read: got %d; want 1", n)
	}
	r := p.stop(t)
	if rec := parseSummary(t, r.stdout).record(t, client); rec.Source != "warm" {
		t.Errorf("source: got %q; want warm", rec.Source)
	}
}

// TestViaRefusedChannel: a channel sshd refuses (PermitOpen allows another
// target) is a failed dial, recorded with sshd's reason, and warned about
// at start; the forwarder lives on.
func TestViaRefusedChannel(t *testing.T) {
	s := newViaSSHD(t, "PermitOpen 127.0.0.1:1")
	up := startUpstream(t, echo)
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward", "--json", "-q", "--warm", "1"}, s.args()...), "0", up.addr())...)
	addr := p.waitReady(t)
	p.waitStderr(t, regexp.MustCompile(`warning: cannot reach .*prohibited`))
	client := dialRefused(t, addr)
	r := p.stop(t)
	sum := parseSummary(t, r.stdout)
	rec := sum.record(t, client)
	if rec.ClosedBy != "error" || !strings.Contains(rec.Error, "administratively prohibited") {
		t.Errorf("record: closed_by %q, error %q; want error with sshd's reason (administratively prohibited)", rec.ClosedBy, rec.Error)
	}
	if sum.Totals.Failed != 1 {
		t.Errorf("totals.failed: got %d; want 1", sum.Totals.Failed)
	}
}

// TestViaHealsAfterSshdRestart: sshd is killed (with its connection
// processes) while clients stream through it, and started again. The
// clients on the dead connection end in error, with the reason in their
// records; warmport prints one line for the drop and one for the recovery,
// never exits, and serves the next client once sshd is back.
func TestViaHealsAfterSshdRestart(t *testing.T) {
	s := newViaSSHD(t)
	up := startUpstream(t, echo)
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward", "--json", "-q", "--warm", "2", "--dial-timeout", "20s"}, s.args()...), "0", up.addr())...)
	addr := p.waitReady(t)
	p.waitPoolIdle(t, 2)

	// Load: clients that echo until their connection breaks.
	const n = 4
	type loadEnd struct {
		client string
		err    error
	}
	ends := make(chan loadEnd, n)
	started := make(chan struct{}, n)
	for range n {
		go func() {
			c, err := dialClient(addr)
			if err != nil {
				ends <- loadEnd{"", err}
				return
			}
			defer c.Close()
			buf := make([]byte, 1024)
			for i := 0; ; i++ {
				if _, err := c.Write(buf); err != nil {
					ends <- loadEnd{c.LocalAddr().String(), err}
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					ends <- loadEnd{c.LocalAddr().String(), err}
					return
				}
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range n {
		<-started
	}
	s.Kill()
	var broken []string
	for range n {
		e := <-ends
		if e.client == "" {
			t.Fatalf("load client: %v", e.err)
		}
		if errors.Is(e.err, io.EOF) {
			t.Errorf("%s: got a clean EOF; want the abort of a broken stream", e.client)
		}
		broken = append(broken, e.client)
	}
	p.waitStderr(t, regexp.MustCompile(`ssh \S+: connection lost`))
	back := s.Start()
	p.waitStderr(t, regexp.MustCompile(`ssh \S+: reconnected after`))
	client := echoOnce(t, addr, "after the restart")
	t.Logf("next client served %.2fs after sshd listened again", time.Since(back).Seconds())
	if p.exited() {
		t.Fatalf("warmport exited:\n%s", p.Output())
	}
	r := p.stop(t)
	sum := parseSummary(t, r.stdout)
	for _, c := range broken {
		rec := sum.record(t, c)
		if rec.ClosedBy != "error" || !strings.Contains(rec.Error, "lost") {
			t.Errorf("%s: closed_by %q, error %q; want error, the SSH connection lost", c, rec.ClosedBy, rec.Error)
		}
	}
	if rec := sum.record(t, client); rec.ClosedBy == "error" {
		t.Errorf("the client after the restart: closed_by error (%s); want a clean end", rec.Error)
	}
	if got := len(regexp.MustCompile(`(?m)^warmport: ssh \S+: connection lost`).FindAllString(r.stderr, -1)); got != 1 {
		t.Errorf("drop lines: got %d; want 1\n%s", got, r.stderr)
	}
}

// decodeLast decodes the last line of stdout into v.
func decodeLast(t *testing.T, stdout string, v any) {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatal("no JSON on stdout")
	}
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), v); err != nil {
		t.Fatalf("decode %q: %v", ls[len(ls)-1], err)
	}
}

// TestBenchVia: bench --via times a new SSH connection per client against
// warmport --via with and without warm channels, to the user's own server
// (here sshd reaching itself: a target that speaks first).
func TestBenchVia(t *testing.T) {
	s := newViaSSHD(t)
	p := startWarmportEnv(t, s.env(), append(append([]string{"bench", "--json", "-n", "3", "--interval", "5ms"}, s.args()...), s.Addr())...)
	r := p.wait(t, exitTimeout)
	if r.status != 0 {
		t.Fatalf("exit status: got %d; want 0\nstderr: %s", r.status, r.stderr)
	}
	res := parseBench(t, r.stdout, "new ssh connection per client", "warmport --via --warm 0", "warmport --via --warm 2")
	if res.Via != s.via() {
		t.Errorf("via: got %q; want %q", res.Via, s.via())
	}
}

// TestViaUpSharesOneConnection: two forwards of a profile with the same
// --via and SSH keys share one SSH connection: a drop is one line (and one
// recovery line) naming both, and both serve again after it.
func TestViaUpSharesOneConnection(t *testing.T) {
	s := newViaSSHD(t)
	db, cache := startUpstream(t, echo), startUpstream(t, echo)
	ssh := fmt.Sprintf("via = %q\nidentity = [%q]\nssh-config = \"none\"\nwarm = 1\n", s.via(), s.userKey)
	path := writeProfile(t, fmt.Sprintf("[forward.db]\nlocal = 0\nremote = %q\n%s\n[forward.cache]\nlocal = 0\nremote = %q\n%s",
		db.addr(), ssh, cache.addr(), ssh))
	p := startWarmportEnv(t, s.env(), "up", "-f", path, "--json", "-q")
	addrs := p.waitReadyN(t, 2)
	for _, a := range addrs {
		echoOnce(t, a, "before")
	}
	s.Kill()
	lost := p.waitStderr(t, regexp.MustCompile(`(?m)^warmport: ssh \S+: connection lost.*$`))
	s.Start()
	back := p.waitStderr(t, regexp.MustCompile(`(?m)^warmport: ssh \S+: reconnected.*$`))
	for _, line := range []string{lost, back} {
		if !strings.HasSuffix(line, "(db, cache)") {
			t.Errorf("line %q; want it to end with (db, cache)", line)
		}
	}
	for _, a := range addrs {
		echoOnce(t, a, "after")
	}
	r := p.stop(t)
	if got := len(regexp.MustCompile(`(?m)^warmport: ssh \S+: connection lost`).FindAllString(r.stderr, -1)); got != 1 {
		t.Errorf("drop lines: got %d; want 1 for the shared connection\n%s", got, r.stderr)
	}
	var doc struct {
		Forwards []struct {
			Name string `json:"name"`
			Via  string `json:"via"`
		} `json:"forwards"`
	}
	decodeLast(t, r.stdout, &doc)
	if len(doc.Forwards) != 2 {
		t.Fatalf("forwards: got %+v; want db and cache", doc.Forwards)
	}
	for _, f := range doc.Forwards {
		if f.Via != s.via() {
			t.Errorf("%s: via %q; want %q", f.Name, f.Via, s.via())
		}
	}
}

// TestViaLogins: by default a forwarder is one login on the SSH server, as
// ssh -L; --ssh-conns 4 is four, and a client's bytes cross intact either
// way. sshd logs each login ("Accepted publickey for ...").
func TestViaLogins(t *testing.T) {
	accepted := regexp.MustCompile(`(?m)^Accepted publickey for `)
	for _, tc := range []struct {
		name  string
		flags []string
		want  int
	}{
		{"default", nil, 1},
		{"ssh-conns 4", []string{"--ssh-conns", "4"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newViaSSHD(t)
			up := startUpstream(t, echo)
			args := append(append(append([]string{"forward", "-q", "--warm", "2"}, s.args()...), tc.flags...), "0", up.addr())
			p := startWarmportEnv(t, s.env(), args...)
			addr := p.waitReady(t)
			p.waitPoolIdle(t, 2)
			echoOnce(t, addr, "through the tunnel")
			s.Proc().WaitOutput(t, fmt.Sprintf("%d logins", tc.want), func(out string) bool {
				return len(accepted.FindAllString(out, -1)) >= tc.want
			})
			p.stop(t)
			if got := len(accepted.FindAllString(s.Proc().Output(), -1)); got != tc.want {
				t.Errorf("logins: got %d; want %d\n%s", got, tc.want, s.Proc().Output())
			}
		})
	}
}

// TestViaIdleTimeout: channels have no deadlines; --idle-timeout still ends
// an idle pair (a timer, then Abort): the client gets the abort, never a
// clean EOF, and the record says timeout.
func TestViaIdleTimeout(t *testing.T) {
	s := newViaSSHD(t)
	up := startUpstream(t, echo)
	p := startWarmportEnv(t, s.env(), append(append([]string{"forward", "--json", "-q", "--idle-timeout", "300ms"}, s.args()...), "0", up.addr())...)
	addr := p.waitReady(t)
	c, err := dialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := c.LocalAddr().String()
	io.WriteString(c, "x")
	buf := make([]byte, 8)
	if n, err := io.ReadAtLeast(c, buf, 1); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("echo: got %q, %v; want \"x\"", buf[:n], err)
	}
	n, err := c.Read(buf) // idle now: the timeout ends it
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("read after the idle timeout: got %d bytes, %v; want the abort (a reset)", n, err)
	}
	r := p.stop(t)
	if rec := parseSummary(t, r.stdout).record(t, client); rec.ClosedBy != "timeout" {
		t.Errorf("closed_by: got %q; want timeout", rec.ClosedBy)
	}
}
