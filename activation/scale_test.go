package activation

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// standIn does what systemd does for an Accept=no .socket unit, which
// systemd-socket-activate does only once (it execs the program and is gone):
// it keeps the listening socket, and whenever a client is queued on it and
// the service is not running, starts the service with the socket as fd 3.
type standIn struct {
	addr string
	file *os.File // the socket, kept across starts

	mu     sync.Mutex
	cmd    *exec.Cmd // running now, or nil
	exits  []int     // exit codes, in order
	stderr bytes.Buffer
	exited chan struct{} // one send per exit

	stop, done chan struct{}
}

func startStandIn(t *testing.T, idle string) *standIn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // f keeps the socket listening
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{addr: ln.Addr().String(), file: f, exited: make(chan struct{}, 100),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(t, idle)
	t.Cleanup(func() {
		close(s.stop)
		s.mu.Lock()
		if s.cmd != nil {
			s.cmd.Process.Kill()
		}
		s.mu.Unlock()
		<-s.done
		f.Close()
		if t.Failed() {
			t.Logf("services' stderr:\n%s", s.stderr.String())
		}
	})
	return s
}

func (s *standIn) run(t *testing.T, idle string) {
	defer close(s.done)
	// Not s.file.Fd(): it would put the socket, which the service shares,
	// back in blocking mode, and the service's accept would then ignore
	// its idle deadline.
	var fd int
	if rc, err := s.file.SyscallConn(); err != nil {
		t.Errorf("socket: %v", err)
		return
	} else {
		rc.Control(func(f uintptr) { fd = int(f) })
	}
	for {
		// Wait for a queued client, looking at stop ten times a second.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		select {
		case <-s.stop:
			return
		default:
		}
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			t.Errorf("poll: %v", err)
			return
		}
		// sh sets LISTEN_PID to its own pid, which exec keeps for the
		// service, as systemd sets it between fork and exec.
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "WARMPORT_ACTIVATION_HELPER=serve", "HELPER_IDLE="+idle)
		cmd.ExtraFiles = []*os.File{s.file}
		s.mu.Lock()
		cmd.Stderr = &s.stderr
		err = cmd.Start()
		if err == nil {
			s.cmd = cmd
		}
		s.mu.Unlock()
		if err != nil {
			t.Errorf("start service: %v", err)
			return
		}
		err = cmd.Wait()
		s.mu.Lock()
		s.cmd = nil
		s.exits = append(s.exits, cmd.ProcessState.ExitCode())
		s.mu.Unlock()
		s.exited <- struct{}{}
	}
}

// waitExit waits (bounded) for the service's next exit.
func (s *standIn) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not exit within 20 s of going idle")
	}
}

// Scale to zero on demand: the first connection starts the service, it
// serves, exits 0 when idle, the next connection starts it again, and no
// client is refused, reset or left unanswered, including those that arrive
// while a service is exiting. This is the helper standing in for `warmport
// forward --exit-idle DUR systemd REMOTE`.
func TestScaleToZero(t *testing.T) {
	s := startStandIn(t, "150ms")

	// Rounds separated by exits: each round is one process, each a new one.
	pids := map[string]bool{}
	for round := 0; round < 3; round++ {
		pid := ask(t, "tcp", s.addr, "first")["pid"]
		if again := ask(t, "tcp", s.addr, "second")["pid"]; again != pid {
			t.Errorf("round %d: served by %s then %s; want one process while busy", round, pid, again)
		}
		if pids[pid] {
			t.Errorf("round %d: served by %s again; want a new process after the exit", round, pid)
		}
		pids[pid] = true
		s.waitExit(t)
	}

	// Clients at random gaps, short ones and ones past the idle time in
	// turn: some land while the service is going away.
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 10; i++ {
		ask(t, "tcp", s.addr, "random")
		gap := time.Duration(r.IntN(50)) * time.Millisecond
		if i%2 == 1 {
			gap = time.Duration(200+r.IntN(100)) * time.Millisecond
		}
		time.Sleep(gap) // the load's shape, not a wait for anything
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// 3 rounds, then 5 gaps past the idle time (the last exit may not be
	// in yet).
	if len(s.exits) < 7 {
		t.Errorf("%d starts ended; want at least 7", len(s.exits))
	}
	for i, code := range s.exits {
		if code != 0 {
			t.Errorf("start %d exited %d; want 0", i, code)
		}
	}
}
