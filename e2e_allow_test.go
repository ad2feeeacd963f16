package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// A denied client is reset at once, never reaches REMOTE (the upstream's
// accepts stay at the warm ones, the pool is not touched), is counted in
// totals.denied and is not recorded; an allowed one is relayed as ever.
func TestAllowDeniesAtAccept(t *testing.T) {
	tests := []struct {
		name       string
		allow      []string
		local      string // "" for 127.0.0.1:0
		denied     bool
		clientFrom string // the address the client dials from
	}{
		{"not in the list", []string{"10.0.0.0/8,192.168.1.5"}, "", true, "127.0.0.1"},
		{"in the second flag", []string{"10.0.0.0/8", "127.0.0.0/8"}, "", false, "127.0.0.1"},
		{"one address", []string{"127.0.0.2"}, "127.0.0.2:0", false, "127.0.0.2"},
		{"one address, another client", []string{"127.0.0.2"}, "127.0.0.2:0", true, "127.0.0.3"},
		// A dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1.
		{"IPv4-mapped client, IPv4 rule", []string{"127.0.0.1"}, "[::]:0", false, "127.0.0.1"},
		{"IPv4-mapped client, other rule", []string{"10.0.0.1"}, "[::]:0", true, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, echo)
			args := []string{"forward", "--json", "--warm", "2"}
			for _, a := range tt.allow {
				args = append(args, "--allow", a)
			}
			local := tt.local
			if local == "" {
				local = "127.0.0.1:0"
			}
			p := startWarmport(t, append(args, local, up.addr())...)
			addr := p.waitReady(t)
			_, port, _ := net.SplitHostPort(addr)
			target := net.JoinHostPort(tt.clientFrom, port)
			if strings.HasPrefix(tt.local, "127.0.0.2") {
				target = addr
			}
			up.WaitAccepted(t, 2)
			p.waitPoolIdle(t, 2)
			const clients = 5
			for i := 0; i < clients; i++ {
				err := tryEcho(t, tt.clientFrom, target, "hello\n")
				if tt.denied && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("client %d: got %v; want a reset (ECONNRESET)", i, err)
				}
				if !tt.denied && err != nil {
					t.Fatalf("client %d: got %v; want the echo", i, err)
				}
			}
			res := p.stop(t)
			s := parseSummary(t, res.stdout)
			wantDenied, wantConns := uint64(0), uint64(clients)
			if tt.denied {
				wantDenied, wantConns = clients, 0
			}
			if s.Totals.Denied != wantDenied || s.Totals.Connections != wantConns || uint64(len(s.Connections)) != wantConns {
				t.Errorf("totals denied %d, connections %d, records %d; want %d, %d, %d",
					s.Totals.Denied, s.Totals.Connections, len(s.Connections), wantDenied, wantConns, wantConns)
			}
			accepts := up.Accepted()
			if tt.denied && (accepts != 2 || s.Pool.Hits+s.Pool.Misses != 0) {
				t.Errorf("upstream accepts %d, pool borrows %d; want 2 (the warm ones), 0", accepts, s.Pool.Hits+s.Pool.Misses)
			}
			deniedLines := strings.Count(res.stderr, "warmport: denied "+tt.clientFrom+":")
			if tt.denied && deniedLines != clients || !tt.denied && deniedLines != 0 {
				t.Errorf("denied lines for %s: got %d; want %d\nstderr:\n%s", tt.clientFrom, deniedLines, wantDenied, res.stderr)
			}
			if tt.denied && !strings.Contains(res.stderr, "5 denied") {
				t.Errorf("summary: want \"5 denied\" in it\nstderr:\n%s", res.stderr)
			}
			if !tt.denied && strings.Contains(res.stderr, "denied") {
				t.Errorf("summary says denied with none denied\nstderr:\n%s", res.stderr)
			}
		})
	}
}

// tryEcho dials target from the address from, sends msg and half-closes,
// and returns nil only if msg came back whole and then EOF.
func tryEcho(t *testing.T, from, target, msg string) error {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	// A denied client may be reset before or after its write lands.
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo: got " + string(got))
	}
	return nil
}

// A scan is reported a few lines a second, the rest summed up, never one
// line per client.
func TestAllowReportIsRateLimited(t *testing.T) {
	up := startUpstream(t, echo)
	p := startWarmport(t, "forward", "--json", "--warm", "0", "--allow", "10.0.0.0/8", "127.0.0.1:0", up.addr())
	addr := p.waitReady(t)
	const clients = 60
	for i := 0; i < clients; i++ {
		if err := tryEcho(t, "127.0.0.1", addr, "x"); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client %d: got %v; want a reset", i, err)
		}
	}
	res := p.stop(t)
	s := parseSummary(t, res.stdout)
	if s.Totals.Denied != clients {
		t.Errorf("totals.denied: got %d; want %d", s.Totals.Denied, clients)
	}
	named := strings.Count(res.stderr, "warmport: denied 127.0.0.1:")
	if named == 0 || named >= clients/2 {
		t.Errorf("denied clients named: got %d of %d; want a few (rate-limited)\nstderr:\n%s", named, clients, res.stderr)
	}
	if accepts := up.Accepted(); accepts != 0 {
		t.Errorf("upstream accepts: got %d; want 0", accepts)
	}
}

// Bad --allow values and --allow on a Unix LOCAL are usage errors.
func TestAllowUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad CIDR", []string{"--allow", "10.0.0.300/8", "0", "5432"}, `--allow "10.0.0.300/8" is not a CIDR`},
		{"empty item", []string{"--allow", "10.0.0.0/8,", "0", "5432"}, `--allow "" is not a CIDR`},
		{"a name", []string{"--allow", "localhost", "0", "5432"}, `--allow "localhost" is not a CIDR`},
		{"unix LOCAL", []string{"--allow", "127.0.0.1", "unix:" + t.TempDir() + "/s", "5432"}, "is a Unix socket"},
		{"proxy-protocol v3", []string{"--proxy-protocol", "v3", "0", "5432"}, `--proxy-protocol "v3" is not a version: use v1 or v2`},
		{"proxy-protocol with reuse", []string{"--proxy-protocol", "v2", "--reuse", "http", "0", "5432"}, "--proxy-protocol v2 cannot go with --reuse"},
		{"empty candidate", []string{"0", "a:1,,b:2"}, "has an empty candidate"},
		{"bad candidate", []string{"0", "a:1,b:0"}, `candidate 2 of "a:1,b:0"`},
		{"systemd, nothing passed", []string{"systemd", "5432"}, "LISTEN_FDS is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "is a Unix socket" && !binaryHasUnix() {
				tt.want = "not supported on this platform yet"
			}
			res := runWarmport(t, append([]string{"forward"}, tt.args...)...)
			ls := lines(res.stderr)
			if res.status != 2 || len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") || !strings.Contains(ls[0], tt.want) {
				t.Errorf("got status %d, stderr %q; want 2 and one warmport: line with %q", res.status, res.stderr, tt.want)
			}
		})
	}
}

// Under up the operations keys are per forward, and each forward's notices
// end with its name: a denied client of one, a candidate of another going
// down; the JSON counts the denied where they were denied.
func TestUpOperationsKeys(t *testing.T) {
	up := startUpstream(t, echo)
	dead := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
	profile := fmt.Sprintf(`warm = 1
[forward.guarded]
local = 0
remote = %q
allow = ["10.0.0.0/8", "192.168.0.0/16"]
[forward.spare]
local = 0
remote = "%s,%s"
proxy-protocol = "v1"
`, up.addr(), dead, up.addr())
	p := startWarmport(t, "up", "--json", "-f", writeProfile(t, profile))
	addrs := p.waitReadyN(t, 2)
	if err := tryEcho(t, "127.0.0.1", addrs[0], "x"); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client of guarded: got %v; want a reset", err)
	}
	waitStderr(t, p, "(not in --allow) (guarded)")
	waitStderr(t, p, "warmport: upstream "+dead+" is down")
	res := p.stop(t)
	if !strings.Contains(res.stderr, "trying the next candidate, retrying it in") || !regexpLine(res.stderr, `warmport: upstream `+dead+` is down .* \(spare\)$`) {
		t.Errorf("stderr: want the down line of %s ending in (spare)\n%s", dead, res.stderr)
	}
	j := parseUpJSON(t, res.stdout)
	if len(j.Forwards) != 2 || j.Forwards[0].Totals.Denied != 1 || j.Forwards[1].Totals.Denied != 0 {
		t.Errorf("denied per forward: got %+v; want 1 for guarded, 0 for spare", j.Forwards)
	}
}

// regexpLine reports whether a line of s matches re.
func regexpLine(s, re string) bool {
	r := regexp.MustCompile(re)
	for _, l := range lines(s) {
		if r.MatchString(l) {
			return true
		}
	}
	return false
}

// Denied clients are not connections for --exit-idle: a scan does not keep
// an idle forwarder alive.
func TestAllowDeniedDoNotHoldExitIdle(t *testing.T) {
	up := startUpstream(t, echo)
	p := startWarmport(t, "forward", "--json", "--exit-idle", "500ms", "--allow", "10.0.0.0/8", "127.0.0.1:0", up.addr())
	addr := p.waitReady(t)
	deadline := time.Now().Add(exitTimeout)
	for !p.exited() {
		if time.Now().After(deadline) {
			t.Fatalf("still running %v into a stream of denied clients; want an exit after --exit-idle 500ms", exitTimeout)
		}
		tryEcho(t, "127.0.0.1", addr, "x") // refused once it exited: either way, knocking goes on
		time.Sleep(20 * time.Millisecond)  // the scan's pace, not a wait for anything
	}
	res := p.wait(t, exitTimeout)
	s := parseSummary(t, res.stdout)
	if res.status != 0 || s.Totals.Denied == 0 || s.Totals.Connections != 0 {
		t.Errorf("status %d, denied %d, connections %d; want 0, some, 0", res.status, s.Totals.Denied, s.Totals.Connections)
	}
}
