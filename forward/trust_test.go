package forward

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
	"github.com/warmport/warmport/session"
)

// The forwarder's promises about users' data, each tested on the engine
// this build relays with (-tags wpgoroutines: the goroutine relay): a
// request is never delivered twice, a pair always ends, an abort reaches
// the other peer as a reset, and the pool's counters agree with the records.

// checkHits: pool.hits is the number of records whose source is warm or
// reused.
func checkHits(t *testing.T, sum *session.Summary) {
	t.Helper()
	var hits uint64
	for _, r := range sum.Connections {
		if r.Source == "warm" || r.Source == "reused" {
			hits++
		}
	}
	if sum.Pool.Hits != hits {
		t.Errorf("pool.hits = %d; want %d, the records with source warm or reused (pool %+v)", sum.Pool.Hits, hits, sum.Pool)
	}
}

// dialFromGoroutine dials addr for a test's client goroutine, which must
// not call t.Fatal: nil (the error reported) if it failed. The test's end
// closes the connection.
func dialFromGoroutine(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Error(err)
		return nil
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// requestLog counts the requests an upstream received, by their text.
type requestLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (l *requestLog) add(req string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[string]int)
	}
	l.seen[req]++
}

func (l *requestLog) count(req string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[req]
}

// A sink reads a request and closes without a reply (PostgreSQL answering a
// CancelRequest does this). Through warm connections each request must
// reach it exactly once, and the client must see the sink's clean EOF.
func TestReplaySinkGetsEachRequestOnce(t *testing.T) {
	var log requestLog
	up := startUpstream(t, func(c *net.TCPConn) {
		b := make([]byte, 1024)
		n, _ := c.Read(b)
		if n > 0 {
			log.add(string(b[:n]))
		}
	})
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 2}})
	const clients = 6
	for i := range clients {
		eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 2 })
		c := dial(t, addr)
		req := fmt.Sprintf("REQUEST-%d", i)
		c.Write([]byte(req))
		n, err := c.Read(make([]byte, 16))
		if n != 0 || err != io.EOF {
			t.Fatalf("client %d: read %d bytes, %v; want 0, EOF (the sink's clean close)", i, n, err)
		}
		c.Close()
		eventually(t, "the sink got "+req, func() bool { return log.count(req) > 0 })
	}
	sum := shutdown(t, f, time.Second)
	for i := range clients {
		req := fmt.Sprintf("REQUEST-%d", i)
		if got := log.count(req); got != 1 {
			t.Errorf("the sink got %s %d times; want 1", req, got)
		}
	}
	for _, r := range sum.Connections {
		if r.Source != "warm" || r.ClosedBy != session.ClosedByRemote {
			t.Errorf("record %+v; want source warm, closed_by remote: no replay", r)
		}
	}
	checkHits(t, sum)
}

// A warm connection that passed the probe and then went stale (its server
// closed it as the client came, without reading): the relay dials a fresh
// one once and replays the client's first bytes; the borrow counts as stale
// and a miss, and the record says cold.
func TestReplayAfterStaleWarm(t *testing.T) {
	var log requestLog
	handle, held := staleAfterBorrow(t, func(c *net.TCPConn) {
		b := make([]byte, 1024)
		n, _ := c.Read(b)
		log.add(string(b[:n]))
		c.Write(b[:n])
	})
	up := startUpstream(t, handle)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 2}})
	eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 2 })
	held()
	c := dial(t, addr)
	msg := []byte("first request, replayed once")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("got %q, %v; want %q", got, err, msg)
	}
	c.Close()
	sum := shutdown(t, f, time.Second)
	if n := log.count(string(msg)); n != 1 {
		t.Errorf("the upstream got the request %d times; want 1", n)
	}
	if r := sum.Connections; len(r) != 1 || r[0].BytesUp != int64(len(msg)) || r[0].BytesDown != int64(len(msg)) || r[0].Source != "cold" {
		t.Fatalf("records = %+v; want one redialed (cold) connection with %d bytes each way", r, len(msg))
	}
	if sum.Pool.Stale < 1 || sum.Pool.Misses != 1 {
		t.Errorf("pool %+v; want stale >= 1 and misses 1 (the replay's dial)", sum.Pool)
	}
	checkHits(t, sum)
}

// A server that closes connections idle for a few milliseconds, racing
// clients that arrive at random moments through warm connections: no
// request reaches it twice, every reply goes to the client that asked, a
// client without a reply saw an EOF or a reset, and the pool's counters
// agree with the records.
func TestReplayIdleCloseRace(t *testing.T) {
	var log requestLog
	up := startUpstream(t, func(c *net.TCPConn) {
		r := bufio.NewReader(c)
		for {
			c.SetReadDeadline(time.Now().Add(3 * time.Millisecond))
			line, err := r.ReadString('\n')
			if err != nil {
				return // idle too long, or the client is done: close
			}
			log.add(line)
			c.Write([]byte("reply:" + line))
		}
	})
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 4}})
	const clients = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies, cut := 0, 0
	for i := range clients {
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond) // arrivals at random moments
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialFromGoroutine(t, addr)
			if c == nil {
				return
			}
			defer c.Close()
			req := fmt.Sprintf("req-%d\n", i)
			c.Write([]byte(req))
			got, err := io.ReadAll(io.LimitReader(c, int64(len("reply:")+len(req))))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case string(got) == "reply:"+req:
				replies++
			case len(got) == 0 && (err == nil || errors.Is(err, syscall.ECONNRESET)):
				cut++ // EOF or reset, as the server's close shows on a direct connection too
			default:
				t.Errorf("client %d got %q, %v; want its own reply, an EOF or a reset", i, got, err)
			}
		}()
	}
	wg.Wait()
	sum := shutdown(t, f, time.Second)
	for i := range clients {
		if n := log.count(fmt.Sprintf("req-%d\n", i)); n > 1 {
			t.Errorf("the upstream got req-%d %d times; want at most 1", i, n)
		}
	}
	checkHits(t, sum)
	t.Logf("%d replies, %d cut; pool %+v", replies, cut, sum.Pool)
}

// An upstream that resets after 200000 bytes: the client sees a reset, as
// it would directly, never a clean EOF that makes the stream look whole.
func TestAbortUpstreamResetReachesClient(t *testing.T) {
	up := startUpstream(t, func(c *net.TCPConn) {
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			return
		}
		c.Write(bytes.Repeat([]byte("x"), 200000))
		c.SetLinger(0)
	})
	for _, warm := range []int{0, 2} {
		t.Run(fmt.Sprintf("warm=%d", warm), func(t *testing.T) {
			f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: warm}})
			c := dial(t, addr)
			c.Write([]byte("go"))
			n, err := io.Copy(io.Discard, c)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read %d bytes, then %v; want a reset (ECONNRESET)", n, err)
			}
			sum := shutdown(t, f, time.Second)
			if r := sum.Connections; len(r) != 1 || r[0].ClosedBy != session.ClosedByError {
				t.Errorf("records %+v; want one, closed_by error", r)
			}
		})
	}
}

// A client that resets in the middle of an upload: the upstream sees a
// reset, never a clean EOF that makes the upload look complete.
func TestAbortClientResetReachesUpstream(t *testing.T) {
	got := make(chan error, 1)
	up := startUpstream(t, func(c *net.TCPConn) {
		_, err := io.Copy(io.Discard, struct{ io.Reader }{c})
		got <- err
	})
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	c := dial(t, addr)
	if _, err := c.Write(bytes.Repeat([]byte("u"), 100000)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "upload under way", func() bool { return f.Totals().BytesUp >= 100000 })
	c.SetLinger(0)
	c.Close()
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("upstream's read ended with %v; want a reset (ECONNRESET)", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the upstream's read never ended")
	}
}

// A clean end stays clean: the client half-closes, the upstream answers
// after it, and each side sees a clean EOF (no reset).
func TestCleanEndStaysClean(t *testing.T) {
	up := startUpstream(t, replyAfterEOF)
	_, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 1}})
	c := dial(t, addr)
	c.Write([]byte("data"))
	c.CloseWrite()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("read: %v; want the reply and a clean EOF", err)
	}
}

// The server closes first (HTTP/1.0, Connection: close, Redis QUIT), in
// every mode: every pair ends once its client is gone too, and the
// forwarder's fds come back to where they were.
func TestPairsEndWhenServerClosesFirst(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd: Linux only")
	}
	// A complete keep-alive response, then the server's close: the
	// tracker finds the connection clean, but the upstream is gone.
	up := startUpstream(t, func(c *net.TCPConn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err == nil {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nbye:%s", 4+len(req.URL.Path), req.URL.Path)
		}
	})
	for _, tc := range []struct {
		name  string
		reuse recycle.Protocol
	}{{"default", nil}, {"reuse http", recycle.HTTP}} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			base, _ := countFDs(t)
			f, addr := startForwarder(t, Config{Remote: up.addr(), Reuse: tc.reuse, Pool: pool.Options{Warm: 2}})
			var wg sync.WaitGroup
			sem := make(chan struct{}, 20)
			for i := range 300 {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					c := dialFromGoroutine(t, addr)
					if c == nil {
						return
					}
					defer c.Close()
					fmt.Fprintf(c, "GET /q%d HTTP/1.1\r\nHost: test\r\n\r\n", i)
					if got, err := io.ReadAll(c); err != nil || !strings.HasSuffix(string(got), fmt.Sprintf("bye:/q%d", i)) {
						t.Errorf("client %d: %q, %v; want the reply, then EOF", i, got, err)
					}
				}()
			}
			wg.Wait()
			eventually(t, "every pair ended", func() bool { return f.Active() == 0 })
			shutdown(t, f, time.Second)
			var fds int
			eventually(t, "fds back to the baseline", func() bool {
				runtime.GC()
				fds, _ = countFDs(t)
				return fds <= base+8
			})
		})
	}
}

// --reuse http: a client that leaves before its reply is whole (a slow
// request, pipelined requests read in part, a half-close) never hands that
// reply to the next client on a recycled connection.
func TestReuseNoReplyToTheWrongClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(c *net.TCPConn) // what client A does before it closes
	}{
		{"closes before a slow reply", func(c *net.TCPConn) {
			io.WriteString(c, "GET /alice-secret?sleep=300ms HTTP/1.1\r\nHost: test\r\n\r\n")
		}},
		{"reads one of two pipelined replies", func(c *net.TCPConn) {
			io.WriteString(c, "GET /alice-1 HTTP/1.1\r\nHost: test\r\n\r\nGET /alice-secret?sleep=100ms HTTP/1.1\r\nHost: test\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				io.ReadAll(resp.Body)
			}
		}},
		{"half-closes after a slow request", func(c *net.TCPConn) {
			io.WriteString(c, "GET /alice-secret?sleep=100ms HTTP/1.1\r\nHost: test\r\n\r\n")
			c.CloseWrite()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, addr := startForwarder(t, Config{Remote: startHTTPUpstream(t), Reuse: recycle.HTTP, Pool: pool.Options{Warm: 0}})
			for i := range 3 {
				// A clean exchange first, so A's connection may come back.
				if got, err := httpOnce(addr, "warmup"); err != nil || got != "warmup" {
					t.Fatalf("warm-up: %q, %v", got, err)
				}
				a := dial(t, addr)
				tc.leave(a)
				a.Close()
				got, err := httpOnce(addr, fmt.Sprint("bob", i))
				if err != nil || got != fmt.Sprint("bob", i) {
					t.Fatalf("round %d: B got %q, %v; want its own reply", i, got, err)
				}
			}
			sum := shutdown(t, f, 2*time.Second)
			if sum.Pool.Reused == 0 {
				t.Errorf("pool %+v: nothing recycled; want the clean exchanges recycled", sum.Pool)
			}
			checkHits(t, sum)
		})
	}
}

// staleAfterBorrow wraps serve for an upstream whose first two connections
// (the pool's pre-dials) go stale right after the probe: they are held until
// a warm borrow's probe has passed, then closed; later connections go to
// serve. Which connection is which is decided as its handler starts, and
// handlers start in any order: the test calls held, after the pool filled
// and before a client comes, so that the pool's refill after the borrow is
// never taken for a pre-dial (the borrowed one would then be served).
func staleAfterBorrow(t *testing.T, serve func(*net.TCPConn)) (handle func(*net.TCPConn), held func()) {
	t.Helper()
	closeNow, heldBoth := make(chan struct{}), make(chan struct{})
	var closed sync.WaitGroup
	closed.Add(2)
	var mu sync.Mutex
	dialed := 0
	var once sync.Once
	afterBorrow = func(src pool.Source) {
		if src != pool.Cold {
			once.Do(func() { close(closeNow); closed.Wait() })
		}
	}
	t.Cleanup(func() { afterBorrow = nil })
	handle = func(c *net.TCPConn) {
		mu.Lock()
		dialed++
		stale := dialed <= 2
		if dialed == 2 {
			close(heldBoth)
		}
		mu.Unlock()
		if stale {
			<-closeNow
			c.Close()
			closed.Done()
			return
		}
		serve(c)
	}
	held = func() {
		t.Helper()
		select {
		case <-heldBoth:
		case <-time.After(testTimeout):
			t.Fatal("the upstream never saw the pool's two pre-dials")
		}
	}
	return handle, held
}
