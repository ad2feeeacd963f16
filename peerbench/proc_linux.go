package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a started child process (a forwarder or a helper), in its own
// process group so that stopping it also stops whatever it forked.
type proc struct {
	stopOnce sync.Once
	name     string
	cmd      *exec.Cmd
	stdout   *capBuffer
	stderr   *lineWatcher
	exited   chan struct{} // closed once the process has been reaped
}

// live holds every started child, so that exit hooks can kill them all.
// Once they have, closed stops new children from starting (the measurement
// goroutine may still be running while a signal handler cleans up).
var live struct {
	sync.Mutex
	m      map[*proc]struct{}
	closed bool
}

func init() {
	live.m = map[*proc]struct{}{}
	atExit(killAll)
}

// killAll kills every child still running and lets no new one start (at
// exit; before the link goes).
func killAll() {
	live.Lock()
	live.closed = true
	ps := make([]*proc, 0, len(live.m))
	for p := range live.m {
		ps = append(ps, p)
	}
	live.Unlock()
	for _, p := range ps {
		p.kill()
	}
}

// exiting reports whether cleanup has begun.
func exiting() bool {
	live.Lock()
	defer live.Unlock()
	return live.closed
}

// launch starts argv with a fresh process group, SIGKILL on our death and
// NO_COLOR set. watch, if set, is matched against stderr lines (see readyLine).
func launch(name string, argv []string, watch *regexp.Regexp) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	p := &proc{name: name, cmd: cmd, stdout: &capBuffer{max: 64 << 20},
		stderr: &lineWatcher{re: watch, found: make(chan string, 1)}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	// Grandchildren (socat's per-connection processes) hold the pipes too;
	// do not wait for them longer than this once the process has exited.
	cmd.WaitDelay = 2 * time.Second
	live.Lock()
	defer live.Unlock()
	if live.closed {
		return nil, fmt.Errorf("start %s: the benchmark is exiting", name)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	live.m[p] = struct{}{}
	goSafe(func() {
		cmd.Wait()
		close(p.exited)
	})
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// failure describes an early exit, with the end of its stderr.
func (p *proc) failure() error {
	return fmt.Errorf("%s exited early (%v): %s", p.name, p.cmd.ProcessState, p.stderr.tail())
}

// readyLine waits (bounded) for the watched stderr line and returns its first
// submatch.
func (p *proc) readyLine(timeout time.Duration) (string, error) {
	select {
	case s := <-p.stderr.found:
		return s, nil
	case <-p.exited:
		return "", p.failure()
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no ready line after %s: %s", p.name, timeout, p.stderr.tail())
	}
}

// pollConnect connects to addr until it succeeds (the listener is up) or the
// process exits or the deadline passes. The probe connection is closed at
// once without sending anything.
func (p *proc) pollConnect(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return p.failure()
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not accepting connections after %s: %s", p.name, addr, timeout, p.stderr.tail())
}

// settle waits (bounded) until the process tree is a single process again:
// socat's child for the readiness probe may still be exiting.
func (p *proc) settle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && len(tree(p.pid())) > 1 {
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// the group (whatever it forked goes too) and returns the captured stdout.
// Only the first call signals; later ones just return the output.
func (p *proc) stop(grace time.Duration) []byte {
	p.stopOnce.Do(func() {
		syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			logf("%s did not exit %s after SIGTERM; killing it", p.name, grace)
		}
		p.kill()
	})
	return p.stdout.Bytes()
}

// kill SIGKILLs the process group and waits for the reaper (bounded by
// WaitDelay).
func (p *proc) kill() {
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
	live.Lock()
	delete(live.m, p)
	live.Unlock()
}

// runHelper runs a short-lived child to completion (bounded by timeout, and
// killed early if abort is closed) and returns its stdout.
func runHelper(name string, argv []string, timeout time.Duration, abort <-chan struct{}) ([]byte, error) {
	p, err := launch(name, argv, nil)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	select {
	case <-p.exited:
	case <-abort:
		return nil, fmt.Errorf("%s: aborted", name)
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s: still running after %s: %s", name, timeout, p.stderr.tail())
	}
	if !p.cmd.ProcessState.Success() {
		return nil, fmt.Errorf("%s: %v: %s", name, p.cmd.ProcessState, p.stderr.tail())
	}
	return p.stdout.Bytes(), nil
}

// capBuffer is a goroutine-safe buffer that keeps at most max bytes.
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *capBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// lineWatcher receives a child's stderr: it keeps the last lines for error
// messages and reports the first submatch of the first line matching re.
type lineWatcher struct {
	re    *regexp.Regexp
	found chan string

	mu      sync.Mutex
	partial []byte
	last    []string
	matched bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 4096 { // no newline in sight: keep it as a line
		w.line(string(w.partial))
		w.partial = nil
	}
	return len(p), nil
}

func (w *lineWatcher) line(s string) {
	w.last = append(w.last, s)
	if len(w.last) > 8 {
		w.last = w.last[1:]
	}
	if w.re != nil && !w.matched {
		if m := w.re.FindStringSubmatch(s); m != nil {
			w.matched = true
			w.found <- m[len(m)-1]
		}
	}
}

// tail returns the last stderr lines joined, for error messages.
func (w *lineWatcher) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSpace(strings.Join(append(w.last, string(w.partial)), " | "))
	if s == "" {
		return "(no output)"
	}
	return s
}

// errNotAvailable marks a peer that is not installed or not built.
var errNotAvailable = errors.New("not available")
