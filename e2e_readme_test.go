package main

// README's script examples run as printed against real Debian servers
// (redis-server and nginx, from recycle/realserver), and sshd for how an
// unused pre-dialed connection ends.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/warmport/warmport/recycle/realserver"
	"github.com/warmport/warmport/upstream/sshvia/sshdtest"
)

// server is a real server process the test started.
type server struct {
	addr string
	dir  string
}

func startRedis(t *testing.T) server {
	t.Helper()
	s := realserver.Redis(t)
	return server{addr: s.Addr, dir: s.Dir}
}

func startNginx(t *testing.T) server {
	t.Helper()
	s := realserver.Nginx(t, `location / { return 200 "ok\n"; }`)
	return server{addr: s.Addr, dir: s.Dir}
}

// runnableBlock is a README code block marked `<!-- runnable -->`, with
// what its `# prints:` comments say it prints.
type runnableBlock struct {
	line   int
	script string
	prints []string
}

// readmeRunnable returns README.md's runnable blocks.
func readmeRunnable(t *testing.T) []runnableBlock {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []runnableBlock
	var cur *runnableBlock
	marked := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.script += line + "\n"
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "# prints: "); ok {
				cur.prints = append(cur.prints, p)
			}
		case strings.TrimSpace(line) == "<!-- runnable -->":
			marked = true
		case marked && strings.HasPrefix(line, "```"):
			cur, marked = &runnableBlock{line: n + 1}, false
		}
	}
	return blocks
}

// TestREADMEScripts runs README's script examples exactly as printed, with
// the real binary first in PATH, $REDIS a real redis-server and $API a real
// nginx, in a fresh directory; each must exit 0 and print what its
// `# prints:` comments say, in order.
func TestREADMEScripts(t *testing.T) {
	t.Parallel()
	blocks := readmeRunnable(t)
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d blocks marked <!-- runnable -->; want the Scripts examples (at least 2)", len(blocks))
	}
	redis, api := startRedis(t), startNginx(t)
	for _, b := range blocks {
		t.Run(fmt.Sprintf("README.md:%d", b.line), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", b.script)
			cmd.Dir = t.TempDir()
			cmd.Env = append(baseEnv(), "PATH="+filepath.Dir(warmportBin)+":"+os.Getenv("PATH"),
				"REDIS="+redis.addr, "API="+api.addr, "WARMPORT_STATE_DIR="+t.TempDir(), "NO_COLOR=1")
			cmd.WaitDelay = exitTimeout
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("README.md:%d: %v\nscript:\n%s\noutput:\n%s", b.line, err, b.script, out)
			}
			rest := string(out)
			for _, p := range b.prints {
				i := strings.Index(rest, p)
				if i < 0 {
					t.Fatalf("README.md:%d says it prints %q (in this order); the output:\n%s", b.line, p, out)
				}
				rest = rest[i+len(p):]
			}
		})
	}
}

// TestUnusedWarmConnectionsEndPolitely: sshd greets every pre-dialed
// connection with its banner; when one expires unused, warmport reads what
// is queued before closing, so sshd sees a FIN ("Connection closed") and
// logs no "Connection reset by peer".
//
// Not parallel, so that none of this package's tests that dial a port they
// took for a dead one (testsrv.FreePort) can find this sshd there: once,
// under the whole suite's load, sshd logged a reset on one connection of
// three, and warmport dials two here; its own close always shuts its side
// down first, and sshd then reads an EOF even if a reset follows.
func TestUnusedWarmConnectionsEndPolitely(t *testing.T) {
	sshd := sshdtest.New(t, os.DevNull, "LogLevel VERBOSE")
	sshd.Start()
	p := startWarmport(t, "forward", "-q", "--warm", "2", "--pool-ttl", "300ms", "0", sshd.Addr())
	p.waitReady(t)
	// The first two expired connections, at least.
	ended := regexp.MustCompile(`(?m)^kex_exchange_identification: .*$`)
	sshd.Proc().WaitOutput(t, "two ended connections in sshd's log", func(log string) bool {
		return len(ended.FindAllString(log, -1)) >= 2
	})
	r := p.stop(t)
	if r.status != 0 {
		t.Errorf("exit status: got %d; want 0\n%s", r.status, r.stderr)
	}
	b := sshd.Proc().Output()
	if strings.Contains(b, "reset by peer") || strings.Contains(b, "Connection reset") {
		// A connection sshd logs beyond warmport's dials (its summary) is
		// another test's: one that dialed a port it took for a dead one
		// (testsrv.FreePort) and found sshd there logs just such a reset.
		t.Errorf("sshd's log shows resets; want every unused warm connection to end with a FIN:\n%s\nwarmport's stderr:\n%s", b, r.stderr)
	}
	if !strings.Contains(b, "Connection closed by remote host") {
		t.Errorf("sshd's log: no \"Connection closed by remote host\"; want one per expired connection:\n%s", b)
	}
}
