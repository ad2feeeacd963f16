package recycle

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/recycle/realserver"
)

// respClient speaks raw RESP, as redis-cli does, so the test controls every byte.
type respClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRESP(t *testing.T, addr string) *respClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	return &respClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *respClient) send(cmds ...[]string) {
	rc.t.Helper()
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(cmd(c...))
	}
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		rc.t.Fatal(err)
	}
}

// reply reads one whole RESP2/RESP3 value and returns it in a readable form.
func (rc *respClient) reply() string {
	rc.t.Helper()
	line, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading a reply: %v", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	typ, rest := line[0], line[1:]
	switch typ {
	case '$', '=', '!':
		n, _ := strconv.Atoi(rest)
		if n < 0 {
			return "(nil)"
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, b); err != nil {
			rc.t.Fatal(err)
		}
		return string(b[:n])
	case '*', '~', '%', '>':
		n, _ := strconv.Atoi(rest)
		if n < 0 {
			return "(nil)"
		}
		if typ == '%' {
			n *= 2
		}
		parts := make([]string, n)
		for i := range parts {
			parts[i] = rc.reply()
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return line
}

func (rc *respClient) do(args ...string) string {
	rc.t.Helper()
	rc.send(args)
	return rc.reply()
}

func TestRealRedis(t *testing.T) {
	srv := realserver.Redis(t)
	direct := dialRESP(t, srv.Addr)
	// exchange sends cmds through the proxy, reads one reply each, checks them and that
	// Clean was true exactly after the last one (or never, when !clean).
	type exch struct {
		cmds  [][]string
		want  []string // expected replies ("" accepts any)
		clean bool
	}
	run := func(t *testing.T, steps []exch) (*recProxy, *recConn, *respClient) {
		rp := newRecProxy(t, Redis, srv.Addr)
		c := dialRESP(t, rp.addr())
		for i, s := range steps {
			c.send(s.cmds...)
			for j, w := range s.want {
				if got := c.reply(); w != "" && got != w {
					t.Fatalf("step %d: reply %d to %v = %q; want %q", i, j, s.cmds, abbrev(got), w)
				}
			}
			rp.mark(t, rp.conn(t, 0), fmt.Sprintf("step %d %v", i, s.cmds[0]), s.clean)
		}
		return rp, rp.conn(t, 0), c
	}
	big := strings.Repeat("b", 1<<20)
	var incrs [][]string
	var ones []string
	for i := range 50 {
		incrs = append(incrs, []string{"INCR", "n"})
		ones = append(ones, ":"+strconv.Itoa(i+1))
	}

	t.Run("boundaries", func(t *testing.T) {
		run(t, []exch{
			{[][]string{{"PING"}}, []string{"+PONG"}, true},
			{[][]string{{"SET", "k", "v"}}, []string{"+OK"}, true},
			{[][]string{{"GET", "k"}}, []string{"v"}, true},
			{[][]string{{"GET", "missing"}}, []string{"(nil)"}, true},
			{[][]string{{"SET", "big", big}}, []string{"+OK"}, true},
			{[][]string{{"GET", "big"}}, []string{big}, true},
			{incrs, ones, true},
			{[][]string{{"NOSUCHCOMMAND"}}, []string{""}, true},
			{[][]string{{"SELECT", "5"}}, []string{"+OK"}, true},
			{[][]string{{"CLIENT", "SETNAME", "someone"}}, []string{"+OK"}, true},
			{[][]string{{"RPUSH", "l", "a", "b"}, {"LRANGE", "l", "0", "-1"}}, []string{":2", "[a b]"}, true},
		})
	})
	t.Run("resp3", func(t *testing.T) {
		direct.do("HSET", "h", "f", "v")
		direct.do("ZADD", "z", "1.5", "m")
		run(t, []exch{
			{[][]string{{"HELLO", "3"}}, []string{""}, true},
			{[][]string{{"HGETALL", "h"}}, []string{"[f v]"}, true},
			{[][]string{{"ZSCORE", "z", "m"}}, []string{",1.5"}, true},
			{[][]string{{"SMEMBERS", "nosuchset"}}, []string{"[]"}, true},
			{[][]string{{"GET", "missing"}}, []string{"_"}, true},
			{[][]string{{"EXISTS", "h"}}, []string{":1"}, true},
		})
	})
	t.Run("multi", func(t *testing.T) {
		run(t, []exch{
			{[][]string{{"MULTI"}}, []string{"+OK"}, false},
			{[][]string{{"SET", "m", "1"}}, []string{"+QUEUED"}, false},
			{[][]string{{"EXEC"}}, []string{"[+OK]"}, true},
			{[][]string{{"MULTI"}, {"INCR", "m"}}, []string{"+OK", "+QUEUED"}, false},
			{[][]string{{"DISCARD"}}, []string{"+OK"}, true},
		})
	})
	t.Run("watch", func(t *testing.T) {
		run(t, []exch{
			{[][]string{{"WATCH", "w"}}, []string{"+OK"}, false},
			{[][]string{{"GET", "w"}}, []string{"(nil)"}, false},
			{[][]string{{"UNWATCH"}}, []string{"+OK"}, true},
		})
	})
	t.Run("subscribe", func(t *testing.T) {
		run(t, []exch{
			{[][]string{{"PING"}}, []string{"+PONG"}, true},
			{[][]string{{"SUBSCRIBE", "ch"}}, []string{"[subscribe ch :1]"}, false},
			{[][]string{{"UNSUBSCRIBE", "ch"}}, []string{"[unsubscribe ch :0]"}, false},
			{[][]string{{"PING"}}, []string{"+PONG"}, false},
		})
	})
	t.Run("client reply off", func(t *testing.T) {
		rp := newRecProxy(t, Redis, srv.Addr)
		c := dialRESP(t, rp.addr())
		c.send([]string{"CLIENT", "REPLY", "OFF"}, []string{"SET", "silent", "1"})
		rc := rp.conn(t, 0)
		rp.waitFor(t, "both relayed", func() bool { return rc.reqN == len(cmd("CLIENT", "REPLY", "OFF"))+len(cmd("SET", "silent", "1")) })
		if rp.clean(rc) {
			t.Fatal("Clean() = true after CLIENT REPLY OFF; want false")
		}
		c.send([]string{"CLIENT", "REPLY", "ON"})
		if got := c.reply(); got != "+OK" {
			t.Fatalf("CLIENT REPLY ON = %q; want +OK", got)
		}
		rp.mark(t, rc, "after CLIENT REPLY ON", false)
	})
	t.Run("blpop pending", func(t *testing.T) {
		rp := newRecProxy(t, Redis, srv.Addr)
		c := dialRESP(t, rp.addr())
		c.send([]string{"BLPOP", "jobs", "0"})
		rc := rp.conn(t, 0)
		rp.waitFor(t, "BLPOP relayed", func() bool { return rc.reqN == len(cmd("BLPOP", "jobs", "0")) })
		// Redis has the command (or will): wait until it blocks, as CLIENT LIST tells.
		deadline := time.Now().Add(waitTimeout)
		for !strings.Contains(direct.do("CLIENT", "LIST"), "cmd=blpop") {
			if time.Now().After(deadline) {
				t.Fatal("BLPOP never blocked")
			}
			time.Sleep(5 * time.Millisecond) // the server's state, observable only by asking
		}
		if rp.clean(rc) {
			t.Fatal("Clean() = true with a BLPOP blocked; want false")
		}
		direct.do("LPUSH", "jobs", "job-1")
		if got := c.reply(); got != "[jobs job-1]" {
			t.Fatalf("BLPOP = %q; want [jobs job-1]", got)
		}
		rp.mark(t, rc, "BLPOP answered", true)
	})
}

// RESET, as redis-server answers it, passes CheckReset fed in any chunking, and clears
// the state a client left (its database).
func TestRealRedisReset(t *testing.T) {
	srv := realserver.Redis(t)
	c := dialRESP(t, srv.Addr)
	for _, cmd := range [][]string{{"SELECT", "5"}, {"SET", "only-in-5", "x"}, {"CLIENT", "SETNAME", "left"}} {
		if got := c.do(cmd...); got != "+OK" {
			t.Fatalf("%v = %q; want +OK", cmd, got)
		}
	}
	if _, err := c.c.Write(Redis.ResetRequest()); err != nil {
		t.Fatal(err)
	}
	var reply []byte
	done := false
	for !done {
		b, err := c.r.ReadByte() // one byte at a time: every prefix is checked
		if err != nil {
			t.Fatalf("reading RESET's reply %q: %v", reply, err)
		}
		reply = append(reply, b)
		if done, err = Redis.CheckReset(reply); err != nil {
			t.Fatalf("CheckReset(%q) = %v; want nil", reply, err)
		}
	}
	if got := c.do("GET", "only-in-5"); got != "(nil)" {
		t.Fatalf("GET only-in-5 after RESET = %q; want (nil): RESET should select db 0", got)
	}
	if got := c.do("CLIENT", "GETNAME"); got != "(nil)" {
		t.Fatalf("CLIENT GETNAME after RESET = %q; want (nil)", got)
	}
}

// A server without RESET (renamed away, as on Redis < 6.2) answers an error that
// CheckReset turns into ErrNoReset.
func TestRealRedisNoReset(t *testing.T) {
	srv := realserver.Redis(t, "--rename-command", "RESET", "")
	c := dialRESP(t, srv.Addr)
	if _, err := c.c.Write(Redis.ResetRequest()); err != nil {
		t.Fatal(err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	done, err := Redis.CheckReset(line)
	if !errors.Is(err, ErrNoReset) || !bytes.HasPrefix(line, []byte("-ERR unknown command")) {
		t.Fatalf("CheckReset(%q) = %v, %v; want ErrNoReset", line, done, err)
	}
}
