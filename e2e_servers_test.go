package main

// Helpers of the --reuse end-to-end tests: real redis-server and nginx (started by
// recycle/realserver), their real clients (redis-benchmark, ab), a raw RESP client, and
// the forwarder's open file descriptors.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// startReuse runs `warmport forward --reuse PROTO [extra] 0 REMOTE` and returns it with
// the address it listens on.
func startReuse(t *testing.T, proto, remote string, extra ...string) (*proc, string) {
	t.Helper()
	args := append([]string{"forward", "--reuse", proto, "--json", "-q"}, extra...)
	p := startWarmport(t, append(args, "0", remote)...)
	return p, p.waitReady(t)
}

// runTool runs one of the servers' own clients to its end, failing the test (with the
// Debian package to install) when it is missing or fails.
func runTool(t *testing.T, pkg, name string, args ...string) string {
	t.Helper()
	bin := testsrv.Need(t, name, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fdCount is how many file descriptors the process has open.
func (p *proc) fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/fd")
	if err != nil {
		t.Fatalf("count fds: %v", err)
	}
	return len(ents)
}

// poolIdle is the idle count of p's live snapshot (at most about a second old).
func (p *proc) poolIdle(t *testing.T) int {
	t.Helper()
	var dir string
	for _, kv := range p.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "WARMPORT_STATE_DIR="); ok {
			dir = v
		}
	}
	var s struct {
		Pool struct {
			Idle int `json:"idle"`
		} `json:"pool"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "running", strconv.Itoa(p.cmd.Process.Pid)+".json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return -1 // between rewrites: the caller asks again
	}
	return s.Pool.Idle
}

// fdsBeyondPool is p's open fds less its idle pooled connections: what must come back
// to its baseline once every client is gone, however many upstreams were recycled.
func (p *proc) fdsBeyondPool(t *testing.T) int {
	t.Helper()
	idle := p.poolIdle(t)
	if idle < 0 {
		return -1
	}
	return p.fdCount(t) - idle
}

// waitFDs waits until p's fds beyond its pool are back to base.
func (p *proc) waitFDs(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(exitTimeout)
	n := -1
	for {
		if n = p.fdsBeyondPool(t); n >= 0 && n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warmport holds %d fds beyond its pool %v after the load; want at most %d, its baseline", n, exitTimeout, base)
		}
		time.Sleep(50 * time.Millisecond) // another process's fds and its snapshot file: nothing to wait on
	}
}

// baseFDs measures p's fds beyond its pool once the pool has filled.
func (p *proc) baseFDs(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if n := p.fdsBeyondPool(t); n >= 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot to read the pool from")
		}
		time.Sleep(50 * time.Millisecond) // the snapshot is rewritten about once a second
	}
}

// redisConn is a raw RESP client with a deadline.
type redisConn struct {
	c *net.TCPConn
	r *bufio.Reader
}

func dialRedis(addr string) (*redisConn, error) {
	c, err := dialClient(addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	return &redisConn{c: c, r: bufio.NewReader(c)}, nil
}

func mustRedis(t *testing.T, addr string) *redisConn {
	t.Helper()
	rc, err := dialRedis(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.c.Close() })
	return rc
}

// respCmd encodes a command as clients do: an array of bulk strings.
func respCmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func (rc *redisConn) send(cmds ...[]string) error {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(respCmd(c...))
	}
	_, err := io.WriteString(rc.c, b.String())
	return err
}

// reply reads one whole value (RESP2 or RESP3) in a readable form: simple strings,
// errors and integers with their type byte, bulk strings bare, nil as "(nil)" (RESP3's
// null as "_"), aggregates as [a b].
func (rc *redisConn) reply() (string, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty line in a reply")
	}
	switch line[0] {
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "(nil)", err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "(nil)", err
		}
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = rc.reply(); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return line, nil
}

// do sends one command and returns its reply, failing the test on an I/O error.
func (rc *redisConn) do(t *testing.T, args ...string) string {
	t.Helper()
	if err := rc.send(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	r, err := rc.reply()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return r
}
