//go:build linux

package forward

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/pool"
)

// TestMain lets the test binary double as a forwarder process with a tiny
// file descriptor limit (see TestAcceptSurvivesEMFILE).
func TestMain(m *testing.M) {
	if remote := os.Getenv("WARMPORT_TEST_EMFILE_REMOTE"); remote != "" {
		os.Exit(emfileForwarder(remote))
	}
	bufsOut = func(delta int) { bufsHeld.Add(int64(delta)) }
	// The whole suite runs once per engine: on Linux the event loop (what
	// engineFor picks for sockets), then the copier; elsewhere the copier.
	// Benchmarks measure what ships for sockets, so a run that asks for them
	// is one pass.
	code := m.Run()
	if code == 0 && runtime.GOOS == "linux" && flag.Lookup("test.bench").Value.String() == "" {
		testEngine = "copier"
		code = m.Run()
	}
	os.Exit(code)
}

// onLoop marks a test of the event loop's own mechanics: it runs in the
// suite's loop pass only.
func onLoop(t *testing.T) {
	t.Helper()
	if testEngine == "copier" {
		t.Skip("a test of the event loop's own mechanics: it ran in the loop pass")
	}
}

func echoOnce(addr, msg string) (string, error) {
	c, err := dialLocal(addr) // HOST:PORT or unix:PATH
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	got := make([]byte, len(msg))
	n, err := io.ReadFull(c, got)
	return string(got[:n]), err
}

func emfileForwarder(remote string) int {
	lim := syscall.Rlimit{Cur: 32, Max: 32}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 3
	}
	f, err := New(Config{Local: "127.0.0.1:0", Remote: remote, Pool: pool.Options{Warm: 0}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "new:", err)
		return 3
	}
	fmt.Printf("listening %s\n", f.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent closes our stdin to stop us
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := f.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 4
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	sum := f.Shutdown(sctx)
	fmt.Printf("done %d connections, %d accept backoffs\n", sum.Totals.Connections, f.acceptBackoffs.Load())
	return 0
}

// With 32 fds and 60 clients, accept hits EMFILE: the forwarder must back
// off, never exit, and serve normally once fds are free again.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	up := startUpstream(t, echo)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WARMPORT_TEST_EMFILE_REMOTE="+up.addr())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		t.Fatalf("helper said %q, %v (stderr %q)", line, err, stderr.String())
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))

	var flood []net.Conn
	for range 60 {
		c, err := net.DialTimeout("tcp", addr, testTimeout)
		if err != nil {
			break // the backlog is full: that is the point
		}
		flood = append(flood, c)
	}
	// Let the forwarder run into the limit: some pairs relay, the rest wait.
	for _, c := range flood[:5] {
		c.SetDeadline(time.Now().Add(testTimeout))
		c.Write([]byte("p"))
		c.Read(make([]byte, 1))
	}
	for _, c := range flood {
		c.Close()
	}
	// The flood's pairs close asynchronously: until their fds are free a
	// new client may still meet EMFILE on the upstream dial, so retry.
	deadline := time.Now().Add(testTimeout)
	for {
		got, err := echoOnce(addr, "after the flood")
		if err == nil && got == "after the flood" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after EMFILE: got %q, %v; want the echo (stderr %q)", got, err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil || !strings.HasPrefix(string(rest), "done ") {
		t.Fatalf("helper exit %v, said %q, stderr %q; want a clean exit", err, rest, stderr.String())
	}
	var conns, backoffs int
	fmt.Sscanf(string(rest), "done %d connections, %d accept backoffs", &conns, &backoffs)
	if backoffs == 0 {
		t.Fatalf("helper said %q: it never hit EMFILE, so the test proved nothing", rest)
	}
}

// Serve may run twice at once on one Forwarder: both accept, every client
// is served, and both return when their context ends.
func TestServeTwiceAtOnce(t *testing.T) {
	up := startUpstream(t, echo)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx) }()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprint("c", i)
			if got, err := echoOnce(addr, msg); err != nil || got != msg {
				t.Errorf("client %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("second Serve: %v", err)
	}
}

// A client's socket has TCP_NODELAY, and Go's keepalive (15 s idle, 15 s
// apart, 9 probes) unless LOCAL is a loopback address, where no peer can
// vanish without the kernel saying so. The forwarder sets them once on the
// listener, for accepted sockets to inherit: the test reads them, as a user's
// ss -o or lsof would, on the accepted socket itself (found among this
// process's fds by its two addresses). The loop pass only: the copier's
// duplicate of a socket comes from net.FileConn, which sets TCP_NODELAY and
// Go's keepalive itself, loopback or not, so there the listener's settings
// could be lost unseen.
func TestAcceptedSocketOptions(t *testing.T) {
	onLoop(t)
	for _, tt := range []struct {
		local     string
		keepalive bool
	}{
		{"127.0.0.1:0", false},
		{":0", true}, // every address: not loopback, so keepalive is on
	} {
		t.Run(tt.local, func(t *testing.T) {
			up := startUpstream(t, echo)
			f := serve(t, Config{Local: tt.local, Remote: up.addr(), Pool: pool.Options{Warm: 0}})
			port := strconv.Itoa(f.Addr().(*net.TCPAddr).Port)
			c := dial(t, net.JoinHostPort("127.0.0.1", port))
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			fds := acceptedFDs(t, f.Addr().(*net.TCPAddr).Port, c.LocalAddr().(*net.TCPAddr).Port)
			if len(fds) == 0 {
				t.Fatalf("no socket of this process from %v to %v", c.LocalAddr(), f.Addr())
			}
			want := map[[2]int]int{
				{unix.IPPROTO_TCP, unix.TCP_NODELAY}: 1,
				{unix.SOL_SOCKET, unix.SO_KEEPALIVE}: 0,
			}
			if tt.keepalive {
				want[[2]int{unix.SOL_SOCKET, unix.SO_KEEPALIVE}] = 1
				want[[2]int{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}] = 15
				want[[2]int{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}] = 15
				want[[2]int{unix.IPPROTO_TCP, unix.TCP_KEEPCNT}] = 9
			}
			for _, fd := range fds {
				for opt, v := range want {
					got, err := unix.GetsockoptInt(fd, opt[0], opt[1])
					if err != nil {
						t.Fatalf("getsockopt(%d, %d, %d): %v", fd, opt[0], opt[1], err)
					}
					if got != v {
						t.Errorf("the accepted socket's option %d/%d: got %d; want %d", opt[0], opt[1], got, v)
					}
				}
			}
		})
	}
}

// acceptedFDs are this process's file descriptors of TCP sockets on local
// port port connected to peer port peer.
func acceptedFDs(t *testing.T, port, peer int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	portOf := func(sa unix.Sockaddr) int {
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			return a.Port
		case *unix.SockaddrInet6:
			return a.Port
		}
		return -1
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if sa, err := unix.Getsockname(fd); err != nil || portOf(sa) != port {
			continue
		}
		if sa, err := unix.Getpeername(fd); err == nil && portOf(sa) == peer {
			fds = append(fds, fd)
		}
	}
	return fds
}
