package main

// End-to-end tests of `warmport up`: a profile's forwards in one real
// process, against real upstreams, with real signals.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// writeProfile writes text as a profile in a new directory and returns its path.
func writeProfile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warmport.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// upJSON is `up --json`'s output, decoded by the test's own types.
type upJSON struct {
	Forwards []struct {
		Name string `json:"name"`
		jsonSummary
	} `json:"forwards"`
}

func parseUpJSON(t *testing.T, stdout string) upJSON {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatalf("no JSON on stdout")
	}
	last := ls[len(ls)-1]
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(last), &top); err != nil || len(top) != 1 || top["forwards"] == nil {
		t.Fatalf("up --json: got %s; want one object with the one key \"forwards\"", last)
	}
	var out upJSON
	if err := json.Unmarshal([]byte(last), &out); err != nil {
		t.Fatalf("decode up --json: %v\n%s", err, last)
	}
	return out
}

// TestUpProfileErrors: every kind of mistake in a profile, or in how up is
// called, is exit 2 with one line, FILE:LINE where a line holds it, and
// nothing listens; --check reports the same first error.
func TestUpProfileErrors(t *testing.T) {
	t.Parallel()
	good := "[forward.db]\nlocal = 0\nremote = \"127.0.0.1:1\"\n"
	for _, tc := range []struct {
		name, profile string
		args          []string
		want          string // after "warmport: FILE"
	}{
		{"unknown key", "warm = 1\n[forward.db]\nlocal = 0\nremote = \"127.0.0.1:1\"\nwarmth = 2\n", nil, `:5: unknown key "warmth"; did you mean warm?`},
		{"wrong type", "[forward.db]\nlocal = 0\nremote = \"127.0.0.1:1\"\nwarm = \"four\"\n", nil, ":4: "},
		{"bad duration", "pool-ttl = \"10\"\n" + good, nil, ":1: "},
		{"process-wide in a table", good + "json = true\n", nil, ":4: json is for the whole process: set it at the top of the file, before any table"},
		{"warm over pool-max", "[forward.db]\nlocal = 0\nremote = \"127.0.0.1:1\"\npool-max = 2\nwarm = 5\n", nil, ":5: --warm 5 exceeds --pool-max 2"},
		{"bad local", "[forward.db]\nlocal = \"127.0.0.1:99999\"\nremote = \"127.0.0.1:1\"\n", nil, ":2: "},
		{"bad remote", "[forward.db]\nlocal = 0\nremote = \"nohost:\"\n", nil, ":3: "},
		{"negative drain-timeout", "drain-timeout = \"-1s\"\n" + good, nil, ":1: --drain-timeout -1s: must not be negative"},
		{"no forward", "warm = 1\n", nil, ": no forward in it"},
		{"unknown NAME", good, []string{"cache"}, `: no forward "cache" in it; its forwards are db`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeProfile(t, tc.profile)
			for _, check := range []bool{false, true} {
				args := []string{"up", "-f", path}
				if check {
					args = append(args, "--check")
				}
				r := runWarmport(t, append(args, tc.args...)...)
				prefix := "warmport: " + path + tc.want
				if r.status != 2 || !strings.HasPrefix(r.stderr, prefix) || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("%v: got status %d, stderr %q; want 2 and one line starting %q", args, r.status, r.stderr, prefix)
				}
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		path := writeProfile(t, good)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"up"}, `warmport: no warmport.toml here: write one (README "Profiles") or name one with -f FILE` + "\n"},
			{[]string{"up", "-f", path + ".missing"}, "warmport: cannot read the profile: "},
			{[]string{"up", "-f", path, "db", "--json"}, "warmport: flag --json after a NAME: flags go first"},
			{[]string{"up", "-f", path, "db", "--"}, "warmport: missing COMMAND after --"},
			{[]string{"up", "-f", path, "--"}, "warmport: missing COMMAND after --"},
			// -- as a flag's value is no COMMAND: nope is a NAME.
			{[]string{"up", "-f", path, "--state-dir", "--", "nope"}, "warmport: " + path + `: no forward "nope" in it`},
			{[]string{"up", "--drain-timeout", "-1s", "-f", path}, "warmport: --drain-timeout -1s: must not be negative"},
		} {
			r := runWarmport(t, tc.args...)
			if r.status != 2 || !strings.HasPrefix(r.stderr, tc.want) {
				t.Errorf("%q: got status %d, stderr %q; want 2 and %q", tc.args, r.status, r.stderr, tc.want)
			}
		}
	})
}

// TestUpCheck: --check of a good profile says so and exits 0 without
// listening: its fixed port stays free to take while it runs.
func TestUpCheck(t *testing.T) {
	t.Parallel()
	port := testsrv.FreePort(t)
	path := writeProfile(t, fmt.Sprintf("warm = 0\n[forward.db]\nlocal = %d\nremote = \"127.0.0.1:1\"\n[forward.web]\nlocal = 0\nremote = \"127.0.0.1:2\"\n", port))
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runWarmport(t, "up", "--check", "-f", path)
	if want := "warmport: " + path + ": no error; forwards db, web\n"; r.status != 0 || r.stderr != want {
		t.Errorf("up --check: got status %d, stderr %q; want 0 and %q", r.status, r.stderr, want)
	}
}

// TestUpForwards: two and five forwards, each to its own upstream (a real
// redis-server among them); every forward has its ready line with its name,
// its connection lines name it, the JSON lists each in profile order with
// the exact bytes that went through it, and the summary has one section
// per forward and the totals of all.
func TestUpForwards(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			redis := startRedis(t)
			var profile strings.Builder
			profile.WriteString("warm = 1\n")
			names := make([]string, n)
			remotes := make([]string, n)
			for i := range n {
				names[i] = fmt.Sprintf("svc-%d", i)
				remotes[i] = startUpstream(t, replyAfterEOF).addr()
				if i == 0 {
					names[i], remotes[i] = "cache", redis.addr
				}
				fmt.Fprintf(&profile, "[forward.%s]\nlocal = 0\nremote = %q\n", names[i], remotes[i])
			}
			p := startWarmport(t, "up", "--json", "-f", writeProfile(t, profile.String()))
			addrs := p.waitReadyN(t, n)
			for i, l := range readyLines(p.Output()) {
				if want := fmt.Sprintf("warmport: forwarding %s -> %s (%s)", addrs[i], remotes[i], names[i]); l != want {
					t.Errorf("ready line %d: got %q; want %q", i, l, want)
				}
			}
			// redis: one PING, exact bytes both ways.
			rc := mustRedis(t, addrs[0])
			if got := rc.do(t, "PING"); got != "+PONG" {
				t.Errorf("PING through %s: got %q; want +PONG", addrs[0], got)
			}
			rc.c.Close()
			wantUp, wantDown := make([]int64, n), make([]int64, n)
			wantUp[0], wantDown[0] = int64(len(respCmd("PING"))), int64(len("+PONG\r\n"))
			var wg sync.WaitGroup
			for i := 1; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, sent, got, err := exchange(addrs[i], [32]byte{byte(i)}, int64(1000*i+8), int64(3000*i))
					if err != nil {
						t.Errorf("forward %s: %v", names[i], err)
					}
					wantUp[i], wantDown[i] = sent, got
				}()
			}
			wg.Wait()
			r := p.stop(t)
			out := parseUpJSON(t, r.stdout)
			if len(out.Forwards) != n {
				t.Fatalf("forwards in the JSON: got %d; want %d", len(out.Forwards), n)
			}
			for i, f := range out.Forwards {
				if f.Name != names[i] || f.Local != addrs[i] || f.Remote != remotes[i] {
					t.Errorf("forward %d: got %s %s -> %s; want %s %s -> %s", i, f.Name, f.Local, f.Remote, names[i], addrs[i], remotes[i])
				}
				if f.Totals.Connections != 1 || f.Totals.BytesUp != wantUp[i] || f.Totals.BytesDown != wantDown[i] {
					t.Errorf("forward %s totals: got %d connections, up %d, down %d; want 1, %d, %d",
						f.Name, f.Totals.Connections, f.Totals.BytesUp, f.Totals.BytesDown, wantUp[i], wantDown[i])
				}
				if len(f.Connections) != 1 {
					continue
				}
				rec := f.Connections[0]
				line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(names[i]) + ` #1 ` + regexp.QuoteMeta(rec.Client) + ` `)
				if !line.MatchString(r.stderr) {
					t.Errorf("no connection line starting %q in stderr:\n%s", names[i]+" #1 "+rec.Client, r.stderr)
				}
			}
			for _, name := range names {
				if !strings.Contains(r.stderr, "\nforward "+name+"\nwarmport session ") {
					t.Errorf("no summary section for %s in stderr:\n%s", name, r.stderr)
				}
			}
			if want := fmt.Sprintf("\nall %d forwards: %d connections (0 failed)", n, n); !strings.Contains(r.stderr, want) {
				t.Errorf("no %q in stderr:\n%s", want, r.stderr)
			}
		})
	}
}

// TestUpChildEnv: COMMAND gets WARMPORT_<NAME>_ADDR and _PORT of each
// forward (NAME upper-cased, '-' as '_'; PORT empty for a Unix socket),
// reaches the upstreams through them, and its status is up's.
func TestUpChildEnv(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echo)
	sock := filepath.Join(t.TempDir(), "app.sock")
	path := writeProfile(t, fmt.Sprintf("[forward.db-main]\nlocal = 0\nremote = %q\n[forward.app]\nlocal = \"unix:%s\"\nremote = %q\n", up.addr(), sock, up.addr()))
	script := `printf '%s|%s|%s|%s\n' "$WARMPORT_DB_MAIN_ADDR" "$WARMPORT_DB_MAIN_PORT" "$WARMPORT_APP_ADDR" "${WARMPORT_APP_PORT-unset}"
printf ping | socat - "TCP:$WARMPORT_DB_MAIN_ADDR"; echo
printf pong | socat - "UNIX-CONNECT:${WARMPORT_APP_ADDR#unix:}"; echo
exit 7`
	p := startWarmport(t, "up", "-f", path, "--", "sh", "-c", script)
	r := p.wait(t, exitTimeout)
	addrs := readyAddrs(r.stderr)
	if len(addrs) != 2 {
		t.Fatalf("ready lines: got %q; want 2\nstderr:\n%s", addrs, r.stderr)
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	want := fmt.Sprintf("%s|%s|unix:%s|\nping\npong\n", addrs[0], port, sock)
	if r.status != 7 || r.stdout != want {
		t.Errorf("child: got status %d, stdout %q; want 7 and %q\nstderr:\n%s", r.status, r.stdout, want, r.stderr)
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unix socket after exit: got %v; want it removed", err)
	}
}

// TestUpSelect: NAMEs run only those forwards, in profile order whatever
// the order given.
func TestUpSelect(t *testing.T) {
	t.Parallel()
	path := writeProfile(t, "warm = 0\n[forward.a]\nlocal = 0\nremote = \"127.0.0.1:1\"\n[forward.b]\nlocal = 0\nremote = \"127.0.0.1:2\"\n[forward.c]\nlocal = 0\nremote = \"127.0.0.1:3\"\n")
	p := startWarmport(t, "up", "--json", "-f", path, "c", "a")
	p.waitReadyN(t, 2)
	r := p.stop(t)
	var got []string
	for _, f := range parseUpJSON(t, r.stdout).Forwards {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != "a,c" || len(readyLines(r.stderr)) != 2 || !strings.HasSuffix(readyLines(r.stderr)[1], "(c)") {
		t.Errorf("up c a: got forwards %v, ready lines %q; want a,c", got, readyLines(r.stderr))
	}
}

// TestUpListenFails: when one forward cannot listen (its port is in use),
// up exits 1 naming it, with no ready line, and the forwards that listened
// before it are closed (the Unix socket of the first is gone).
func TestUpListenFails(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	sock := filepath.Join(t.TempDir(), "first.sock")
	port := testsrv.FreePort(t)
	path := writeProfile(t, fmt.Sprintf("warm = 0\n[forward.first]\nlocal = \"unix:%s\"\nremote = \"127.0.0.1:1\"\n[forward.second]\nlocal = %d\nremote = \"127.0.0.1:1\"\n[forward.third]\nlocal = %q\nremote = \"127.0.0.1:1\"\n",
		sock, port, busy.Addr().String()))
	r := runWarmport(t, "up", "-f", path)
	want := "warmport: forward third: " + busy.Addr().String() + " is already in use"
	if r.status != 1 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("got status %d, stderr %q; want 1 and one line starting %q", r.status, r.stderr, want)
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("first forward's socket: got %v; want it removed", err)
	}
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("second forward's port after exit: %v; want it free", err)
	} else {
		ln.Close()
	}
}

// TestUpDrainOnSIGTERM: one SIGTERM drains every forward: a transfer in
// flight on each completes byte for byte, then up exits 0.
func TestUpDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	up1, up2 := startUpstream(t, echo), startUpstream(t, echo)
	path := writeProfile(t, fmt.Sprintf("[forward.one]\nlocal = 0\nremote = %q\n[forward.two]\nlocal = 0\nremote = %q\n", up1.addr(), up2.addr()))
	p := startWarmport(t, "up", "--json", "-f", path)
	addrs := p.waitReadyN(t, 2)
	const size = 2 << 20
	termed := make(chan struct{})
	closeTermed := sync.OnceFunc(func() { close(termed) })
	defer closeTermed()
	started := make(chan struct{}, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = slowEcho(a, byte(i), size, started, termed)
		}()
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(ioTimeout):
			t.Fatalf("transfers did not start within %v", ioTimeout)
		}
	}
	p.signal(t, syscall.SIGTERM)
	for _, a := range addrs {
		waitDraining(t, a)
	}
	closeTermed()
	wg.Wait()
	r := p.wait(t, exitTimeout)
	for i, err := range errs {
		if err != nil {
			t.Errorf("transfer through forward %d: %v", i, err)
		}
	}
	if r.status != 0 {
		t.Fatalf("exit status: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
	}
	for _, f := range parseUpJSON(t, r.stdout).Forwards {
		if f.Totals.BytesUp != size || f.Totals.BytesDown != size {
			t.Errorf("forward %s: got up %d down %d; want %d each", f.Name, f.Totals.BytesUp, f.Totals.BytesDown, size)
		}
	}
}
