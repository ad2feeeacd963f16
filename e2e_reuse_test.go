package main

// End-to-end tests of --reuse redis and --reuse http with the real servers and their
// real clients: no reply ever reaches the wrong client, no connection state crosses from
// one client to the next, and the forwarder's fds come back to their baseline.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warmport/warmport/recycle/realserver"
)

// redis-benchmark through --reuse redis completes, and its rate is logged beside a
// direct run for comparison (a measurement, not an assertion).
func TestReuseRedisBenchmark(t *testing.T) {
	srv := realserver.Redis(t)
	p, addr := startReuse(t, "redis", srv.Addr)
	base := p.baseFDs(t)
	_, port, _ := net.SplitHostPort(addr)
	bench := func(port string, extra ...string) string {
		args := append([]string{"-h", "127.0.0.1", "-p", port, "-t", "set,get", "-n", "20000", "-c", "20", "-q"}, extra...)
		out := runTool(t, "redis-tools", "redis-benchmark", args...)
		var rates []string
		for _, test := range []string{"SET", "GET"} {
			// Progress lines end in \r; the final one names the rate.
			m := regexp.MustCompile(test + `: [0-9.]+ requests per second[^\r\n]*`).FindString(out)
			if m == "" {
				t.Fatalf("redis-benchmark %v: no %s rate:\n%s", args, test, out)
			}
			rates = append(rates, m)
		}
		return strings.Join(rates, "; ")
	}
	t.Logf("direct:        %s", bench(strconv.Itoa(srv.Port)))
	t.Logf("--reuse redis: %s", bench(port))
	t.Logf("--reuse redis -P 16: %s", bench(port, "-P", "16"))
	p.waitFDs(t, base)
	s := parseSummary(t, p.stop(t).stdout)
	if s.Pool.Reused == 0 {
		t.Errorf("pool.reused = 0 after redis-benchmark's clients closed; want recycled upstreams")
	}
}

// Clients with tagged keys, 15% of them leaving early (an abandoned big reply, a
// pipeline cut short, a half-close, an abandoned BLPOP, half a command): every reply any
// client reads is its own.
func TestReuseRedisTaggedClients(t *testing.T) {
	srv := realserver.Redis(t)
	p, addr := startReuse(t, "redis", srv.Addr)
	base := p.baseFDs(t)
	setup := mustRedis(t, srv.Addr)
	if got := setup.do(t, "SET", "big", strings.Repeat("B", 256<<10)); got != "+OK" {
		t.Fatalf("SET big = %q", got)
	}

	const workers, sessions = 20, 60
	var ioErrs, early atomic.Int64
	var wrong wrongs
	bad := wrong.bad
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for s := range sessions {
				tag := fmt.Sprintf("%d:%d", w, s)
				if r.IntN(100) < 15 {
					early.Add(1)
					if err := leaveEarly(addr, tag, r.IntN(5), bad); err != nil {
						ioErrs.Add(1)
					}
					continue
				}
				if err := taggedSession(addr, tag, r, bad); err != nil {
					ioErrs.Add(1)
					bad("session %s: %v", tag, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d sessions, %d left early", workers*sessions, early.Load())
	if n := wrong.n.Load(); n > 0 {
		t.Errorf("%d wrong replies or failed sessions; first ones:\n%s", n, strings.Join(wrong.samples, "\n"))
	}
	p.waitFDs(t, base)
	s := parseSummary(t, p.stop(t).stdout)
	if s.Pool.Reused == 0 {
		t.Errorf("pool.reused = 0; want recycled upstreams (else this test proves nothing)")
	}
}

// taggedSession sets and reads back keys of its own, one by one or pipelined.
func taggedSession(addr, tag string, r *rand.Rand, bad func(string, ...any)) error {
	rc, err := dialRedis(addr)
	if err != nil {
		return err
	}
	defer rc.c.Close()
	n := 1 + r.IntN(4)
	pipelined := r.IntN(2) == 0
	var cmds [][]string
	var want []string
	for i := range n {
		key, val := "tag:"+tag+":"+strconv.Itoa(i), "val:"+tag+":"+strconv.Itoa(i)
		cmds = append(cmds, []string{"SET", key, val}, []string{"GET", key})
		want = append(want, "+OK", val)
	}
	for i := 0; i < len(cmds); {
		k := 1
		if pipelined {
			k = len(cmds)
		}
		if err := rc.send(cmds[i : i+k]...); err != nil {
			return err
		}
		for j := i; j < i+k; j++ {
			got, err := rc.reply()
			if err != nil {
				return err
			}
			if got != want[j] {
				bad("client %s: %v = %.40q; want %q", tag, cmds[j], got, want[j])
			}
		}
		i += k
	}
	return nil
}

// leaveEarly is a client that does not wait for all its replies, in one of five ways.
func leaveEarly(addr, tag string, how int, bad func(string, ...any)) error {
	rc, err := dialRedis(addr)
	if err != nil {
		return err
	}
	defer rc.c.Close()
	switch how {
	case 0: // a big reply abandoned
		return rc.send([]string{"GET", "big"})
	case 1: // a pipeline cut short: reads 3 replies of 10
		var cmds [][]string
		for i := range 10 {
			cmds = append(cmds, []string{"ECHO", "echo:" + tag + ":" + strconv.Itoa(i)})
		}
		if err := rc.send(cmds...); err != nil {
			return err
		}
		for i := range 3 {
			got, err := rc.reply()
			if err != nil {
				return err
			}
			if want := "echo:" + tag + ":" + strconv.Itoa(i); got != want {
				bad("client %s (pipeline cut short): reply %d = %.40q; want %q", tag, i, got, want)
			}
		}
	case 2: // a half-close: the replies still come, then the end
		if err := rc.send([]string{"ECHO", "half:" + tag}, []string{"PING"}); err != nil {
			return err
		}
		rc.c.CloseWrite()
		for _, want := range []string{"half:" + tag, "+PONG"} {
			got, err := rc.reply()
			if err != nil {
				return err
			}
			if got != want {
				bad("client %s (half-close): %.40q; want %q", tag, got, want)
			}
		}
		if rest, err := io.ReadAll(rc.r); err != nil || len(rest) > 0 {
			bad("client %s (half-close): after the replies %q, %v; want EOF", tag, rest, err)
		}
	case 3: // a blocking command abandoned: its nil reply comes 50 ms later
		return rc.send([]string{"BLPOP", "nothing:" + tag, "0.05"})
	case 4: // half a command
		_, err := io.WriteString(rc.c, "*3\r\n$3\r\nSET\r\n$5\r\nhal")
		return err
	}
	return nil
}

// After a client leaves state behind — a database, a name, RESP3, an open MULTI, a
// WATCH, a subscription, a blocked BLPOP, CLIENT REPLY OFF — the next client sees none of
// it. Each case has its own forwarder with one pooled connection at most and none
// pre-dialed, so the next client gets the first one's upstream exactly when it was
// recycled; CLIENT ID tells, and each case says whether it must be.
func TestReuseRedisStateIsolation(t *testing.T) {
	srv := realserver.Redis(t)
	admin := mustRedis(t, srv.Addr)
	cases := []struct {
		name    string
		leave   [][]string // the first client's last commands
		recycle bool       // its upstream must be reused (else closed)
		check   func(t *testing.T, rc *redisConn)
	}{
		{"select", [][]string{{"SELECT", "5"}, {"SET", "iso", "in-db-5"}}, true, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "GET", "iso"); got != "(nil)" {
				t.Errorf("GET iso = %q; want (nil): the client runs in db 5", got)
			}
		}},
		{"client setname", [][]string{{"CLIENT", "SETNAME", "alice"}}, true, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "CLIENT", "GETNAME"); got != "(nil)" {
				t.Errorf("CLIENT GETNAME = %q; want (nil)", got)
			}
		}},
		{"hello 3", [][]string{{"HELLO", "3"}}, true, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "GET", "missing"); got != "(nil)" {
				t.Errorf("GET missing = %q; want RESP2's (nil)", got)
			}
		}},
		{"multi", [][]string{{"MULTI"}, {"SET", "queued", "1"}}, false, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "SET", "after-multi", "1"); got != "+OK" {
				t.Errorf("SET after another client's MULTI = %q; want +OK", got)
			}
			if got := rc.do(t, "GET", "queued"); got != "(nil)" {
				t.Errorf("GET queued = %q; want (nil): the MULTI was never executed", got)
			}
		}},
		{"watch", [][]string{{"WATCH", "w"}}, false, nil},
		{"subscribe", [][]string{{"SUBSCRIBE", "ch"}}, false, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "SET", "after-subscribe", "1"); got != "+OK" {
				t.Errorf("SET after another client's SUBSCRIBE = %q; want +OK", got)
			}
		}},
		{"blpop", [][]string{{"BLPOP", "jobs", "0"}}, false, func(t *testing.T, rc *redisConn) {
			if got := rc.do(t, "LPUSH", "jobs", "job-1"); got != ":1" {
				t.Errorf("LPUSH jobs = %q; want :1", got)
			}
			if got := rc.do(t, "LPOP", "jobs"); got != "job-1" {
				t.Errorf("LPOP jobs = %q; want job-1: an abandoned BLPOP swallowed it", got)
			}
		}},
		{"client reply off", [][]string{{"CLIENT", "REPLY", "OFF"}}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, addr := startReuse(t, "redis", srv.Addr, "--warm", "0", "--pool-max", "1")
			a := mustRedis(t, addr)
			id := strings.TrimPrefix(a.do(t, "CLIENT", "ID"), ":")
			if err := a.send(c.leave...); err != nil {
				t.Fatal(err)
			}
			if c.recycle {
				for range c.leave { // a clean client reads its replies
					if _, err := a.reply(); err != nil {
						t.Fatal(err)
					}
				}
			} else { // replies not read: the client leaves with its state open
				waitServerHas(t, admin, id, c.leave[len(c.leave)-1][0])
			}
			a.c.Close()
			// Wait for warmport's decision: the upstream in the pool, or gone.
			deadline := time.Now().Add(exitTimeout)
			for p.poolIdle(t) < 1 && strings.Contains(admin.do(t, "CLIENT", "LIST", "ID", id), "id="+id+" ") {
				if time.Now().After(deadline) {
					t.Fatalf("upstream %s neither pooled nor closed %v after its client left", id, exitTimeout)
				}
				time.Sleep(20 * time.Millisecond) // the decision shows only in the snapshot and the server
			}
			b := mustRedis(t, addr)
			if reused := b.do(t, "CLIENT", "ID") == ":"+id; reused != c.recycle {
				t.Errorf("the next client got the same upstream: %v; want %v", reused, c.recycle)
			}
			if got := b.do(t, "CLIENT", "INFO"); !strings.Contains(got, " db=0 ") || !strings.Contains(got, " multi=-1 ") || !strings.Contains(got, " sub=0 psub=0") {
				t.Errorf("CLIENT INFO = %q; want db=0, multi=-1, no subscription", got)
			}
			if got := b.do(t, "PING"); got != "+PONG" {
				t.Errorf("PING = %q; want +PONG", got)
			}
			if c.check != nil {
				c.check(t, b)
			}
			b.c.Close()
			p.stop(t)
		})
	}
}

// waitServerHas waits until Redis shows connection id running (or having run) cmd, so
// that the client leaves with it truly pending.
func waitServerHas(t *testing.T, admin *redisConn, id, cmd string) {
	t.Helper()
	want := "cmd=" + strings.ToLower(cmd)
	deadline := time.Now().Add(exitTimeout)
	for {
		list := admin.do(t, "CLIENT", "LIST", "ID", strings.TrimPrefix(id, ":"))
		if strings.Contains(list, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis never showed %s for client %s: %q", want, id, list)
		}
		time.Sleep(10 * time.Millisecond) // the server's state, seen only by asking
	}
}

// nginx under ab, with keep-alive (-k) and without: no failed request, and the fds come
// back to their baseline. (ab speaks HTTP/1.0, which --reuse http never recycles: this is
// the load test of the pairs that end; TestReuseHTTPTaggedClients recycles.)
func TestReuseNginxAB(t *testing.T) {
	srv := realserver.Nginx(t, "")
	if err := os.WriteFile(filepath.Join(srv.Dir, "www", "index.html"), bytes.Repeat([]byte("n"), 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	p, addr := startReuse(t, "http", srv.Addr)
	base := p.baseFDs(t)
	for _, k := range [][]string{{"-k"}, nil} {
		args := append(append([]string{"-n", "2000", "-c", "20"}, k...), "http://"+addr+"/index.html")
		out := runTool(t, "apache2-utils", "ab", args...)
		for _, want := range []string{`Complete requests:\s+2000\n`, `Failed requests:\s+0\n`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Fatalf("ab %v: no %q in:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, "Non-2xx responses") {
			t.Fatalf("ab %v: non-2xx responses:\n%s", args, out)
		}
		if m := regexp.MustCompile(`Requests per second:\s+(\S+)`).FindStringSubmatch(out); m != nil {
			t.Logf("ab %v: %s requests per second", k, m[1])
		}
		p.waitFDs(t, base)
	}
	p.stop(t)
}

// HTTP/1.1 clients that close after one to three requests (so upstreams are recycled
// between clients), each reading files whose content names them; 15% leave early: they
// abandon a big response mid-way, pipeline two requests and read one, or ask for a slow
// response (nginx proxying an application that takes 50 ms) and close at once. Every
// body read is the right one.
func TestReuseHTTPTaggedClients(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the application's work: a reply still coming when the client goes
		io.WriteString(w, "slow reply for "+r.URL.Path)
	}))
	defer app.Close()
	srv := realserver.Nginx(t, "location /slow/ { proxy_pass http://"+app.Listener.Addr().String()+"; }")
	const files = 50
	content := func(i int) []byte {
		size := 100 + i*37
		if i%10 == 0 {
			size = 300 << 10 // big enough to be abandoned mid-way
		}
		return bytes.Repeat([]byte("file-"+strconv.Itoa(i)+";"), size/8+1)
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(srv.Dir, "www", strconv.Itoa(i)+".txt"), content(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, addr := startReuse(t, "http", srv.Addr)
	base := p.baseFDs(t)

	const workers, sessions = 20, 40
	var early atomic.Int64
	var wrong wrongs
	bad := wrong.bad
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range sessions {
				if r.IntN(100) < 15 {
					early.Add(1)
					httpLeaveEarly(addr, r.IntN(3), bad)
					continue
				}
				httpSession(addr, r, files, content, bad)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d sessions, %d left early", workers*sessions, early.Load())
	if n := wrong.n.Load(); n > 0 {
		t.Errorf("%d wrong bodies or failed requests; first ones:\n%s", n, strings.Join(wrong.samples, "\n"))
	}
	p.waitFDs(t, base)
	s := parseSummary(t, p.stop(t).stdout)
	if s.Pool.Reused == 0 {
		t.Errorf("pool.reused = 0; want recycled upstreams (else this test proves nothing)")
	}
}

// httpSession is one keep-alive client: one to three GETs, then its connection closed
// (no Connection: close: the client just goes).
func httpSession(addr string, r *rand.Rand, files int, content func(int) []byte, bad func(string, ...any)) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		MaxConnsPerHost: 1,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: ioTimeout}
	for range 1 + r.IntN(3) {
		i := 1 + r.IntN(files-1)
		if i%10 == 0 {
			i++
		}
		resp, err := c.Get("http://" + addr + "/" + strconv.Itoa(i) + ".txt")
		if err != nil {
			bad("GET %d: %v", i, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, content(i)) {
			bad("GET %d: status %d, %d bytes starting %.20q, %v; want file %d", i, resp.StatusCode, len(body), body, err, i)
		}
	}
}

// httpLeaveEarly abandons a big response after its first bytes, pipelines two
// requests and reads one response, or asks for a slow reply and closes at once.
func httpLeaveEarly(addr string, how int, bad func(string, ...any)) {
	c, err := dialClient(addr)
	if err != nil {
		bad("dial: %v", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	req := "GET /0.txt HTTP/1.1\r\nHost: x\r\n\r\n"
	switch how {
	case 1:
		req = "GET /1.txt HTTP/1.1\r\nHost: x\r\n\r\n" + req
	case 2:
		req = "GET /slow/" + c.LocalAddr().String() + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		bad("write: %v", err)
		return
	}
	if how == 2 {
		return
	}
	head := make([]byte, 1024)
	if _, err := io.ReadFull(c, head); err != nil {
		bad("read the first bytes: %v", err)
		return
	}
	want := []byte("file-0;")
	if how == 1 {
		want = []byte("file-1;")
	}
	if !bytes.Contains(head, want) {
		bad("early leaver: first bytes %.80q; want %s", head, want)
	}
}

// wrongs counts what went wrong across a test's client goroutines and keeps
// the first few descriptions for the failure message.
type wrongs struct {
	n       atomic.Int64
	mu      sync.Mutex
	samples []string
}

func (w *wrongs) bad(format string, args ...any) {
	w.n.Add(1)
	w.mu.Lock()
	if len(w.samples) < 10 {
		w.samples = append(w.samples, fmt.Sprintf(format, args...))
	}
	w.mu.Unlock()
}
