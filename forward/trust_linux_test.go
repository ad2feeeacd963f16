package forward

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// The replay rule's kernel verdict (replayrule.go) on real sockets, for each
// way a server can end a connection the client's bytes were written to.
func TestReplayRuleVerdict(t *testing.T) {
	const req = "REQUEST"
	for _, tc := range []struct {
		name       string
		server     func(c *net.TCPConn) // runs on the server's end after the client wrote req
		closeFirst bool                 // the server closes before the client writes (idle close)
		want       bool                 // replayable
	}{
		// Closed before the bytes came: they met a closed socket, which
		// answers with a reset and never acknowledges them.
		{"closed before the bytes came", nil, true, true},
		// A sink: read, then close. The FIN acknowledges the bytes.
		{"read and closed", func(c *net.TCPConn) { io.ReadFull(c, make([]byte, len(req))); c.Close() }, false, false},
		// Received (acknowledged), never read, then closed: the reset
		// cannot prove nothing was read, so no replay.
		{"received, reset unread", func(c *net.TCPConn) { waitQueued(t, c, len(req)); c.Close() }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cl, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			client := cl.(*net.TCPConn)
			if tc.closeFirst {
				sc.Close()
				waitEOF(t, client)
			}
			if _, err := client.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			if tc.server != nil {
				tc.server(sc.(*net.TCPConn))
			}
			waitEOF(t, client)
			if got := replayableConn(t, client, len(req)); got != tc.want {
				t.Errorf("replayable = %v; want %v", got, tc.want)
			}
		})
	}
}

// waitEOF waits until c's peer has ended (EOF or reset is readable) without
// reading it.
func waitEOF(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		unix.Poll(pfd, int(testTimeout/time.Millisecond))
	})
}

// waitQueued waits until n bytes are queued unread on c.
func waitQueued(t *testing.T, c *net.TCPConn, n int) {
	t.Helper()
	rc, _ := c.SyscallConn()
	eventually(t, "bytes queued", func() bool {
		q := 0
		rc.Control(func(fd uintptr) { q, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		return q >= n
	})
}

// A dial that Shutdown cancels (the drain gave up while the client waited
// for its upstream) is recorded as shutdown, never as a failure.
func TestShutdownDuringDialIsNoFailure(t *testing.T) {
	ln := blackholed(t)
	f, addr := startForwarder(t, Config{Remote: ln.Addr().String(), DialTimeout: time.Minute, Pool: pool.Options{Warm: 0}})
	dial(t, addr)
	eventually(t, "the client waiting for its dial", func() bool { return f.Active() == 1 })
	// What Shutdown does when the drain gives up, first step alone: cancel
	// the dials. The dial fails before any abort marks the pair.
	f.hardCancel()
	eventually(t, "the cancelled dial's pair ended", func() bool { return f.Active() == 0 })
	sum := shutdown(t, f, time.Second)
	if r := sum.Connections; len(r) != 1 || r[0].ClosedBy != session.ClosedByShutdown {
		t.Errorf("records %+v; want one, closed_by shutdown", r)
	}
	if sum.Totals.Failed != 0 {
		t.Errorf("totals.failed = %d; want 0", sum.Totals.Failed)
	}
}

// replayableConn applies the replay rule to c, after written bytes.
func replayableConn(t *testing.T, c *net.TCPConn, written int) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return replayableFD(func(fn func(fd int)) { rc.Control(func(fd uintptr) { fn(int(fd)) }) }, written)
}
