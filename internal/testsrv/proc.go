package testsrv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logMax bounds the output a Proc keeps for failure messages.
const logMax = 256 << 10

// Proc is a real server process of a test (redis-server, nginx, sshd, ...),
// started by Start and stopped when the test ends.
type Proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	readyAt time.Time
	exited  chan struct{} // closed once the process was reaped
	err     error         // Wait's, once exited is closed

	mu      sync.Mutex
	log     strings.Builder // stdout and stderr, in order, bounded; stderr alone with SplitStdout
	stdout  bytes.Buffer    // with SplitStdout: all of stdout
	changed chan struct{}   // closed and replaced at every line
	outEnd  chan struct{}   // closed once the output reached its end
	stdEnd  chan struct{}   // closed once stdout reached its end (at once without SplitStdout)
}

// An Option changes how Start runs a process.
type Option func(*options)

type options struct{ splitStdout bool }

// SplitStdout keeps the process's stdout apart from its stderr, whole and
// unbounded (Stdout): for a program whose stdout is data (warmport's JSON
// summary) while stderr says how it does (its ready line). Output and
// WaitOutput then see stderr alone.
func SplitStdout() Option { return func(o *options) { o.splitStdout = true } }

// Start runs cmd, its stdout and stderr read together, and waits (bounded
// by Timeout) for a line of it that contains ready; "" waits for nothing
// (a server that prints no ready line: the caller waits in its own way).
// A process that exits first, or says nothing in time, is stopped and
// reaped, and the error holds its output: the caller fails the test or, if
// the output says so, tries again (an address taken meanwhile). Options
// (SplitStdout) change what is kept. The test's
// end stops the process (Stop), and logs its output if the test failed. cmd must not have been started; unless it
// set SysProcAttr, the process is killed should the test process die.
func Start(t testing.TB, cmd *exec.Cmd, ready string, opt ...Option) (*Proc, error) {
	t.Helper()
	var o options
	for _, f := range opt {
		f(&o)
	}
	// Pipes of our own rather than an io.Writer: exec's copying goroutine
	// would make Wait wait for every process that inherited the pipe (sshd's
	// connection processes), not just this one.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	var rOut, wOut *os.File
	if o.splitStdout {
		if rOut, wOut, err = os.Pipe(); err != nil {
			r.Close()
			w.Close()
			return nil, err
		}
		cmd.Stdout = wOut
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = dieWithParent()
	}
	err = cmd.Start()
	w.Close()
	if wOut != nil {
		wOut.Close()
	}
	if err != nil {
		r.Close()
		if rOut != nil {
			rOut.Close()
		}
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Proc{t: t, cmd: cmd, exited: make(chan struct{}), changed: make(chan struct{}),
		outEnd: make(chan struct{}), stdEnd: make(chan struct{})}
	seen := make(chan time.Time, 1)
	go p.read(r, ready, seen)
	if rOut != nil {
		go p.readStdout(rOut)
	} else {
		close(p.stdEnd)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", cmd.Path, p.Output())
			if o.splitStdout {
				t.Logf("%s's stdout:\n%s", cmd.Path, p.Stdout())
			}
		}
	})
	if ready == "" {
		return p, nil
	}
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case p.readyAt = <-seen:
		return p, nil
	case <-p.exited:
		p.waitRead()
		// A process that said it was ready and then exited at once leaves
		// both cases ready, and select picks either: its output decides.
		select {
		case p.readyAt = <-seen:
			return p, nil
		default:
		}
		return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", cmd.Path, p.err, p.Output())
	case <-timer.C:
		p.Stop()
		return nil, fmt.Errorf("%s printed no %q within %v:\n%s", cmd.Path, ready, Timeout, p.Output())
	}
}

// MustStart is Start that fails the test when the process does not start.
func MustStart(t testing.TB, cmd *exec.Cmd, ready string, opt ...Option) *Proc {
	t.Helper()
	p, err := Start(t, cmd, ready, opt...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// read keeps the output and sends the moment of the first ready line.
func (p *Proc) read(r *os.File, ready string, seen chan<- time.Time) {
	defer close(p.outEnd)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := ready == ""
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if p.log.Len() < logMax {
			p.log.WriteString(line + "\n")
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if !found && strings.Contains(line, ready) {
			found = true
			seen <- time.Now()
		}
	}
}

// readStdout keeps stdout (SplitStdout).
func (p *Proc) readStdout(r *os.File) {
	defer close(p.stdEnd)
	defer r.Close()
	b := make([]byte, 32<<10)
	for {
		n, err := r.Read(b)
		p.mu.Lock()
		p.stdout.Write(b[:n])
		p.mu.Unlock()
		if err != nil { // io.EOF once every holder of the pipe closed it
			return
		}
	}
}

// waitRead waits, briefly, for the output's end after the process exited:
// a child that inherited the pipes may hold them open longer.
func (p *Proc) waitRead() {
	limit := time.After(time.Second)
	for _, end := range []chan struct{}{p.outEnd, p.stdEnd} {
		select {
		case <-end:
		case <-limit:
			return
		}
	}
}

// Stdout is what the process printed on stdout so far, with SplitStdout;
// "" without it (stdout is then in Output).
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Output is what the process printed so far (bounded), for failure messages.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// WaitOutput waits (bounded by Timeout) until cond holds for the output so
// far, looking again at every line; what names what the test waits for. A
// process that exits first fails the test.
func (p *Proc) WaitOutput(t testing.TB, what string, cond func(out string) bool) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		out, ch := p.log.String(), p.changed
		p.mu.Unlock()
		if cond(out) {
			return
		}
		select {
		case <-ch:
		case <-p.exited:
			p.waitRead()
			if out := p.Output(); !cond(out) {
				t.Fatalf("%s exited (%v) before %s:\n%s", p.cmd.Path, p.err, what, out)
			}
			return
		case <-timer.C:
			t.Fatalf("%s: no %s within %v:\n%s", p.cmd.Path, what, Timeout, out)
		}
	}
}

// ReadyAt is when the ready line came.
func (p *Proc) ReadyAt() time.Time { return p.readyAt }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process, unless it has exited.
func (p *Proc) Signal(sig os.Signal) {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// Exited is closed once the process has exited and was reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Wait waits (bounded by Timeout) for the process to end by itself and
// returns its exit status, -1 if a signal ended it; Output then holds all it
// printed.
func (p *Proc) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
		p.waitRead() // its last words, for Output
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(Timeout):
		t.Fatalf("%s still running %v after it should have ended:\n%s", p.cmd.Path, Timeout, p.Output())
		return -1
	}
}

// Stop ends the process as its init system would, SIGTERM, then SIGKILL
// after Timeout, and reaps it. It may be called more than once.
func (p *Proc) Stop() {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(Timeout):
		p.Kill()
	}
}

// Kill ends the process with SIGKILL, at once, and reaps it (a process
// stuck in the kernel past Timeout fails the test).
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(Timeout):
		p.t.Errorf("%s (pid %d) still running %v after SIGKILL", p.cmd.Path, p.Pid(), Timeout)
	}
}
