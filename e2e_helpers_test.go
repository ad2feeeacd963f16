package main

// Helpers of the end-to-end tests: build the binary once, run it as a real
// process, learn its address from the ready line on stderr, signal it, and
// read its exit status, stdout and stderr. The tests speak to it over real TCP
// on 127.0.0.1 (e2e_upstream_test.go has the upstream servers and clients).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// helperEnv makes the test binary act as a child command of warmport (see
// runHelper) instead of running the tests, as os/exec's own tests do.
const helperEnv = "WARMPORT_E2E_HELPER"

// Deadlines: generous, because a loaded 2-core machine under -race is slow.
// None of them is a claim about speed; each only bounds a wait.
const (
	readyTimeout = 20 * time.Second // from start to the ready line
	exitTimeout  = 30 * time.Second // from a signal (or the end of the work) to exit
	ioTimeout    = 60 * time.Second // one client's whole exchange
)

// warmportBin is the binary under test, built once by TestMain.
var warmportBin string

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the binary and runs the suite against it; on Linux
// twice: as shipped (the event loop relays socket pairs), then built with
// the copier for every pair (forward.testEngine), so both engines pass the
// same end-to-end suite.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "warmport-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	engines := []string{""}
	if runtime.GOOS == "linux" {
		engines = append(engines, "copier")
	}
	for _, engine := range engines {
		warmportBin = filepath.Join(dir, "warmport"+engine)
		args := []string{"build", "-o", warmportBin}
		if os.Getenv("WARMPORT_E2E_RACE") != "" { // also hunt data races in the product
			args = append(args, "-race")
		}
		if engine != "" {
			args = append(args, "-ldflags", "-X github.com/warmport/warmport/forward.testEngine="+engine)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build: %v\n%s", err, out)
			return 1
		}
		if code := m.Run(); code != 0 {
			return code
		}
	}
	return 0
}

// readyRE matches the contract's ready line on stderr.
var readyRE = regexp.MustCompile(`forwarding (\S+) -> (\S+)`)

// proc is one running warmport process (or a program that execs it), on
// testsrv's launcher: stdout kept apart (the JSON summary is data), stderr
// watched for the contract's ready lines.
type proc struct {
	*testsrv.Proc
	cmd *exec.Cmd
}

// result is how a process ended.
type result struct {
	status         int // exit status; -1 if killed by a signal
	stdout, stderr string
}

// baseEnv is the test's environment without the variables that change
// warmport's output or would make it a helper child.
func baseEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{"NO_COLOR=", helperEnv + "=", "WARMPORT_STATE_DIR="} {
			if strings.HasPrefix(kv, k) {
				return true
			}
		}
		return false
	})
}

// startWarmport runs warmport with args, NO_COLOR=1 and a private state dir.
func startWarmport(t *testing.T, args ...string) *proc {
	t.Helper()
	return startWarmportEnv(t, []string{"NO_COLOR=1"}, args...)
}

// waitPoolIdle waits until p's own live snapshot (warmport stats' source,
// rewritten within a second of a change) shows at least n warm connections
// idle in the pool. The upstream having accepted them is not enough: the
// pool takes a connection in only once its dial has returned.
func (p *proc) waitPoolIdle(t *testing.T, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	dir := ""
	for _, kv := range p.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "WARMPORT_STATE_DIR="); ok {
			dir = v // the last one wins, as in exec
		}
	}
	snap := filepath.Join(dir, "running", strconv.Itoa(p.Pid())+".json")
	var s struct {
		Pool struct {
			Idle int `json:"idle"`
		} `json:"pool"`
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		if b, err := os.ReadFile(snap); err == nil && json.Unmarshal(b, &s) == nil && s.Pool.Idle >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool had %d idle connections after %v; want %d (snapshot %s)", s.Pool.Idle, readyTimeout, n, snap)
		}
		time.Sleep(20 * time.Millisecond) // another process's file: nothing to wait on but the file
	}
}

// startWarmportEnv runs warmport with args and extra environment variables
// on top of baseEnv (so NO_COLOR is unset unless env sets it). The process
// is killed when the test ends, if it is still running.
func startWarmportEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(warmportBin, args...)
	cmd.Env = append(append(baseEnv(), "WARMPORT_STATE_DIR="+t.TempDir()), env...)
	return startProc(t, cmd)
}

// startProc starts cmd, warmport or a program that execs it; it is killed
// when the test ends, if still running (a SIGTERM would make it drain).
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{Proc: testsrv.MustStart(t, cmd, "", testsrv.SplitStdout()), cmd: cmd}
	t.Cleanup(p.Kill) // runs before testsrv's Stop, which then finds it ended
	return p
}

// runWarmport runs warmport to its end (bounded by exitTimeout) and returns how it ended.
func runWarmport(t *testing.T, args ...string) result {
	t.Helper()
	return startWarmport(t, args...).wait(t, exitTimeout)
}

// waitReady waits for the ready line and returns the address listened on.
func (p *proc) waitReady(t *testing.T) string {
	t.Helper()
	return p.waitReadyN(t, 1)[0]
}

// waitReadyN waits for n ready lines (warmport up: one per forward) and
// returns their addresses in order.
func (p *proc) waitReadyN(t *testing.T, n int) []string {
	t.Helper()
	p.WaitOutput(t, fmt.Sprintf("%d ready lines", n), func(out string) bool { return len(readyAddrs(out)) >= n })
	return readyAddrs(p.Output())
}

// readyAddr is the address of the first ready line so far, "" before it.
func (p *proc) readyAddr() string {
	if addrs := readyAddrs(p.Output()); len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// readyLines are the ready lines of stderr, in order.
func readyLines(stderr string) []string {
	var out []string
	for _, l := range lines(stderr) {
		if readyRE.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// readyAddrs are the addresses listened on that the ready lines in stderr name.
func readyAddrs(stderr string) []string {
	var out []string
	for _, l := range readyLines(stderr) {
		out = append(out, readyRE.FindStringSubmatch(l)[1])
	}
	return out
}

// waitStderr waits until p's stderr contains s; a process that exits first
// fails the test.
func waitStderr(t *testing.T, p *proc, s string) {
	t.Helper()
	p.WaitOutput(t, fmt.Sprintf("%q on stderr", s), func(out string) bool { return strings.Contains(out, s) })
}

// waitStderr waits until p's stderr matches re, and returns the match.
func (p *proc) waitStderr(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	p.WaitOutput(t, fmt.Sprintf("stderr matching %q", re), re.MatchString)
	return re.FindString(p.Output())
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exited reports whether the process has ended, without waiting.
func (p *proc) exited() bool {
	select {
	case <-p.Exited():
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end; past it, it kills the
// process and fails the test.
func (p *proc) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.Exited():
	case <-timer.C:
		p.Kill()
		t.Fatalf("warmport still running %v after it should have ended; killed it\nstderr:\n%s", timeout, p.Output())
	}
	status := p.Wait(t) // at once: it has ended; Output and Stdout are then whole
	return result{status: status, stdout: p.Stdout(), stderr: p.Output()}
}

// stop sends SIGTERM and waits for the exit, which must be status 0.
func (p *proc) stop(t *testing.T) result {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	r := p.wait(t, exitTimeout)
	if r.status != 0 {
		t.Errorf("exit status after SIGTERM: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
	}
	return r
}

// waitDraining waits until the listener at addr refuses connections: the
// forwarder has taken the signal and stopped accepting. The dials it makes
// before that are closed at once (each shows up in the summary as a
// connection of 0 bytes).
func waitDraining(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(exitTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			// Refused, or reset when the listener closed with this
			// connection still in its queue.
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
				return
			}
			t.Fatalf("dial %s while waiting for the drain: %v", addr, err)
		}
		c.Close()
		time.Sleep(20 * time.Millisecond) // nothing to wait on: poll
	}
	t.Fatalf("%s still accepts connections %v after the signal", addr, exitTimeout)
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	return slices.DeleteFunc(strings.Split(s, "\n"), func(l string) bool { return l == "" })
}

// The JSON summary of the contract, decoded by the test's own types so that
// the test checks the contract rather than the product's structs.
type jsonSummary struct {
	Local       string       `json:"local"`
	Remote      string       `json:"remote"`
	Started     time.Time    `json:"started"`
	Ended       time.Time    `json:"ended"`
	Connections []jsonRecord `json:"connections"`
	Dropped     uint64       `json:"dropped"`
	Totals      struct {
		Connections uint64 `json:"connections"`
		Failed      uint64 `json:"failed"`
		Denied      uint64 `json:"denied"`
		BytesUp     int64  `json:"bytes_up"`
		BytesDown   int64  `json:"bytes_down"`
	} `json:"totals"`
	Pool struct {
		Hits    uint64 `json:"hits"`
		Misses  uint64 `json:"misses"`
		Stale   uint64 `json:"stale"`
		Evicted uint64 `json:"evicted"`
		Expired uint64 `json:"expired"`
		Reused  uint64 `json:"reused"`
		Dials   uint64 `json:"dials"`
	} `json:"pool"`
}

type jsonRecord struct {
	ID         uint64    `json:"id"`
	Client     string    `json:"client"`
	Upstream   string    `json:"upstream"`
	Source     string    `json:"source"`
	DialMS     float64   `json:"dial_ms"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
	BytesUp    int64     `json:"bytes_up"`
	BytesDown  int64     `json:"bytes_down"`
	ClosedBy   string    `json:"closed_by"`
	Error      string    `json:"error"`
}

// parseSummary decodes the JSON summary: the last line of stdout (in child
// mode the child's own output comes before it).
func parseSummary(t *testing.T, stdout string) jsonSummary {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatalf("no JSON summary on stdout")
	}
	var s jsonSummary
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &s); err != nil {
		t.Fatalf("decode the JSON summary: %v\nstdout:\n%s", err, stdout)
	}
	return s
}

// dialRefused connects a client that the forwarder is to refuse (its
// upstream dial fails): the client reads no byte and an end. It returns the
// client's address, or "" when the forwarder's reset came before connect
// returned (the client never learned its address; record then takes the only
// record).
func dialRefused(t *testing.T, addr string) string {
	t.Helper()
	c, err := dialClient(addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("read: got %d bytes; want the connection closed", n)
	}
	return c.LocalAddr().String()
}

// record returns the summary's record of the client whose local address is
// client ("" for the summary's only record), failing the test if there is
// not exactly one.
func (s jsonSummary) record(t *testing.T, client string) jsonRecord {
	t.Helper()
	var found []jsonRecord
	for _, r := range s.Connections {
		if r.Client == client || client == "" {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("records of client %s: got %d; want 1\nconnections: %+v", client, len(found), s.Connections)
	}
	return found[0]
}

// benchJSON is `warmport bench --json` as the tests read it.
type benchJSON struct {
	TLS   bool   `json:"tls"`
	Via   string `json:"via"`
	Modes []struct {
		Name    string  `json:"name"`
		P50     float64 `json:"p50_ms"`
		HitRate float64 `json:"pool_hit_rate"`
	} `json:"modes"`
}

// parseBench decodes bench's JSON and checks its modes are want, in order,
// each with a p50, and that the pooled one (the last) was served by the pool.
func parseBench(t *testing.T, stdout string, want ...string) benchJSON {
	t.Helper()
	var res benchJSON
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	if len(res.Modes) != len(want) {
		t.Fatalf("modes: got %+v; want %q", res.Modes, want)
	}
	for i, m := range res.Modes {
		if m.Name != want[i] || m.P50 <= 0 {
			t.Errorf("mode %d: got %+v; want %q with p50 > 0", i, m, want[i])
		}
	}
	if hr := res.Modes[len(want)-1].HitRate; hr <= 0 {
		t.Errorf("pooled mode hit rate: got %v; want > 0", hr)
	}
	return res
}
