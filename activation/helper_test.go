package activation

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the socket-activated program: with
// WARMPORT_ACTIVATION_HELPER=serve it takes its socket through Listener and
// serves like a forwarder with --exit-idle, instead of running the tests.
// Tests start it through systemd-socket-activate or a stand-in for systemd.
func TestMain(m *testing.M) {
	if os.Getenv("WARMPORT_ACTIVATION_HELPER") == "serve" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain takes the socket named HELPER_NAME, answers each connection's
// line with "pid=PID env=LISTEN_FDS-as-seen child=WHAT-A-CHILD-INHERITS
// LINE", and exits 0 after HELPER_IDLE with no new connection, once every
// connection has ended. A bad socket: the error line and exit 2, as
// warmport does.
func helperMain() int {
	ln, err := Listener(os.Getenv("HELPER_NAME"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "warmport: %v\n", err)
		return 2
	}
	idle, err := time.ParseDuration(os.Getenv("HELPER_IDLE"))
	if err != nil {
		idle = 5 * time.Second
	}
	// What a child COMMAND would inherit: LISTEN_FDS, and sockets among its fds.
	out, err := exec.Command("/bin/sh", "-c", `n=0; for f in /proc/$$/fd/*; do case "$(readlink "$f")" in socket:*) n=$((n+1));; esac; done; echo "${LISTEN_FDS-unset},sockets:$n"`).Output()
	child := strings.TrimSpace(string(out))
	if err != nil {
		child = "error:" + err.Error()
	}
	dl := ln.(interface{ SetDeadline(time.Time) error })
	var wg sync.WaitGroup
	for {
		dl.SetDeadline(time.Now().Add(idle))
		c, err := ln.Accept()
		if err != nil {
			// A client that arrives from here on waits in the socket's
			// backlog, which systemd keeps, for the next start: exiting
			// idle never drops one that was accepted.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				ln.Close()
				wg.Wait()
				return 0
			}
			fmt.Fprintf(os.Stderr, "helper: accept: %v\n", err)
			return 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "pid=%d env=%s child=%s %s", os.Getpid(), os.Getenv("LISTEN_FDS"), child, line)
		}()
	}
}

// ask sends line on network/addr and returns the answer's fields (pid,
// env, child, line), failing the test if the connection is refused, reset
// or unanswered.
func ask(t *testing.T, network, addr, line string) map[string]string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "%s\n", line)
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: no answer to %q: %v (got %q)", addr, line, err, answer)
	}
	got := map[string]string{}
	for _, f := range strings.Fields(answer) {
		k, v, _ := strings.Cut(f, "=")
		if v == "" {
			k, v = "line", k
		}
		got[k] = v
	}
	if got["line"] != line {
		t.Fatalf("answer %q; want it to end in %q", answer, line)
	}
	return got
}
