//go:build unix

package testsrv

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

// StandIn does what systemd does for an Accept=no .socket unit, which
// systemd-socket-activate does only once (it execs the program and is gone):
// it keeps a listening socket on 127.0.0.1 and, whenever a client is queued
// on it and the service is not running, starts the service with the socket
// as fd 3 (LISTEN_FDS=1, LISTEN_PID the service's).
type StandIn struct {
	Addr string   // the socket's address
	file *os.File // the socket, kept across starts

	mu     sync.Mutex
	cmd    *exec.Cmd // running now, or nil
	exits  []int     // exit statuses, in order
	stderr bytes.Buffer
	exited chan struct{} // one send per exit

	stop, done chan struct{}
}

// StartStandIn starts the stand-in for the service argv, run with env (and
// LISTEN_FDS, LISTEN_PID) at each start, until the test ends.
func StartStandIn(t testing.TB, env []string, argv ...string) *StandIn {
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
	s := &StandIn{Addr: ln.Addr().String(), file: f, exited: make(chan struct{}, 1000),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(t, env, argv)
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
			t.Logf("the service's stderr, every start:\n%s", s.Stderr())
		}
	})
	return s
}

func (s *StandIn) run(t testing.TB, env, argv []string) {
	defer close(s.done)
	// Not s.file.Fd(): it would put the socket, which the service shares,
	// back in blocking mode, and the service's accept would then ignore
	// its deadlines.
	var fd int
	rc, err := s.file.SyscallConn()
	if err != nil {
		t.Errorf("socket: %v", err)
		return
	}
	rc.Control(func(f uintptr) { fd = int(f) })
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
		cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`}, argv...)...)
		cmd.Env = append(append([]string{}, env...), "LISTEN_FDS=1")
		cmd.ExtraFiles = []*os.File{s.file}
		s.mu.Lock()
		cmd.Stderr = lockedWriter{&s.mu, &s.stderr}
		err = cmd.Start()
		if err == nil {
			s.cmd = cmd
		}
		s.mu.Unlock()
		if err != nil {
			t.Errorf("start the service: %v", err)
			return
		}
		cmd.Wait()
		s.mu.Lock()
		s.cmd = nil
		s.exits = append(s.exits, cmd.ProcessState.ExitCode())
		s.mu.Unlock()
		s.exited <- struct{}{}
	}
}

// WaitExit waits (bounded by Timeout) for the service's next exit.
func (s *StandIn) WaitExit(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(Timeout):
		t.Fatalf("the service did not exit within %v of going idle", Timeout)
	}
}

// Load runs client n times, with gaps under 50 ms and over 200 ms in turn
// (seeded: the same every run): against a service that exits after less
// than 200 ms idle, some clients land while it is going away.
func (s *StandIn) Load(n int, client func(i int)) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		client(i)
		gap := time.Duration(r.IntN(50)) * time.Millisecond
		if i%2 == 1 {
			gap = time.Duration(200+r.IntN(100)) * time.Millisecond
		}
		time.Sleep(gap) // the load's shape, not a wait for anything
	}
}

// WantExits fails the test unless at least n of the service's starts have
// ended, each with status 0.
func (s *StandIn) WantExits(t testing.TB, n int) {
	t.Helper()
	exits := s.Exits()
	if len(exits) < n {
		t.Errorf("%d starts ended; want at least %d", len(exits), n)
	}
	for i, code := range exits {
		if code != 0 {
			t.Errorf("start %d exited %d; want 0", i, code)
		}
	}
}

// Exits returns the exit statuses of the service's starts that ended, in order.
func (s *StandIn) Exits() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.exits...)
}

// Stderr is what the service printed on stderr, every start.
func (s *StandIn) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// lockedWriter writes to w with mu held.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
