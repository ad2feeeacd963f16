package forward

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/recycle"
	"github.com/warmport/warmport/session"
)

// replyAfterEOF reads until the client's EOF, then answers with the sha256
// of what it got followed by that many bytes of a pattern seeded by it.
func replyAfterEOF[C stream](c C) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return
	}
	sum := h.Sum(nil)
	c.Write(sum)
	c.Write(pattern(sum, int(n)))
	c.CloseWrite()
}

func pattern(seed []byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i>>8)
	}
	return b
}

func TestRelayHalfCloseGetsWholeReply(t *testing.T) {
	for _, warm := range []int{0, 2} {
		t.Run(fmt.Sprintf("warm=%d", warm), func(t *testing.T) {
			up := startUpstream(t, replyAfterEOF)
			f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: warm}})
			const clients = 20
			sizes := make([]int, clients)
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i := range clients {
				sizes[i] = rand.IntN(1 << 20)
				wg.Add(1)
				go func(size int) {
					defer wg.Done()
					errs <- roundTrip(addr, size)
				}(sizes[i])
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			sum := shutdown(t, f, time.Second)
			var wantUp, wantDown int64
			for _, s := range sizes {
				wantUp += int64(s)
				wantDown += int64(s) + sha256.Size
			}
			if got := sum.Totals; got.BytesUp != wantUp || got.BytesDown != wantDown || got.Connections != clients {
				t.Errorf("totals = %+v; want %d connections, up %d, down %d", got, clients, wantUp, wantDown)
			}
			for _, r := range sum.Connections {
				if r.ClosedBy != session.ClosedByClient || r.Error != "" {
					t.Errorf("record %d closed by %q (%s); want client", r.ID, r.ClosedBy, r.Error)
				}
			}
		})
	}
}

// roundTrip sends size random bytes, shuts down its write side, and checks
// the reply that replyAfterEOF sends only after EOF, byte for byte.
// roundTrips makes clients round trips of random sizes at once through
// addr, fails the test on any error, and returns the bytes sent up.
func roundTrips(t *testing.T, addr string, clients int) (up int64) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := range clients {
		size := rand.IntN(1 << 20)
		up += int64(size)
		wg.Go(func() { errs[i] = roundTrip(addr, size) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
	return up
}

func roundTrip(addr string, size int) error {
	c, err := dialLocal(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(rand.Uint32())
	}
	go func() {
		c.Write(payload)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read reply: %v", err)
	}
	sum := sha256.Sum256(payload)
	want := append(sum[:], pattern(sum[:], size)...)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("reply to %d bytes: got %d bytes; want %d (sha256 match: %v)", size, len(got), len(want), bytes.Equal(got[:min(len(got), 32)], sum[:]))
	}
	return nil
}

// The upstream ends first (sends, then CloseWrite) and still receives what
// the client sends afterwards: half-close is passed on in that direction too.
func TestRelayRemoteHalfClose(t *testing.T) {
	got := make(chan string, 16) // never blocks a handler, whatever else connects
	up := startUpstream(t, func(c *net.TCPConn) {
		c.Write([]byte("hello, then EOF\n"))
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	// No warm pool: this upstream sends FIN at once, which the pool rightly
	// discards as stale; that is the pool's test, not this one.
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	c := dial(t, addr)
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello, then EOF\n" {
		t.Fatalf("client read %q, %v; want the greeting then EOF", b, err)
	}
	c.Write([]byte("late words"))
	c.CloseWrite()
	if s := <-got; s != "late words" {
		t.Fatalf("upstream got %q after its EOF; want %q", s, "late words")
	}
	c.Close()
	sum := shutdown(t, f, time.Second)
	if r := sum.Connections; len(r) != 1 || r[0].ClosedBy != session.ClosedByRemote || r[0].BytesUp != 10 || r[0].BytesDown != 16 {
		t.Fatalf("records = %+v; want one closed by remote, up 10, down 16", r)
	}
}

func TestRelayBannerFirst(t *testing.T) {
	const banner = "SSH-2.0-OpenSSH_9.6\r\n"
	up := startUpstream(t, func(c *net.TCPConn) {
		c.Write([]byte(banner))
		echo(c)
	})
	for _, warm := range []int{0, 2} {
		t.Run(fmt.Sprintf("warm=%d", warm), func(t *testing.T) {
			f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: warm}})
			if warm > 0 {
				eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == warm })
			}
			for range 3 {
				c := dial(t, addr)
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || line != banner {
					t.Fatalf("first line %q, %v; want %q", line, err, banner)
				}
				c.Write([]byte("x"))
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
					t.Fatalf("echo after banner: %q, %v; want %q (banner repeated?)", b, err, "x")
				}
				c.Close()
			}
		})
	}
}

// A warm connection whose server reads the client's first byte and resets:
// it may have acted on it, so nothing is replayed (replayrule.go): the client
// sees the reset, and the upstream saw the bytes once.
func TestRelayNoReplayAfterServerRead(t *testing.T) {
	var reads atomic.Int64
	up := startUpstream(t, func(c *net.TCPConn) {
		b := make([]byte, 1)
		if n, _ := c.Read(b); n > 0 {
			reads.Add(1)
		}
		c.SetLinger(0) // reset, as a server that gave up on the request
	})
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 2}})
	eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 2 })
	c := dial(t, addr)
	c.Write([]byte("first request, never replayed"))
	if n, err := c.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %d bytes, %v; want a reset", n, err)
	}
	c.Close()
	sum := shutdown(t, f, time.Second)
	if n := reads.Load(); n != 1 {
		t.Errorf("the upstream read the request %d times; want 1", n)
	}
	if r := sum.Connections; len(r) != 1 || r[0].Source != "warm" || r[0].ClosedBy != session.ClosedByError {
		t.Fatalf("records = %+v; want one warm connection, closed_by error", r)
	}
}

// --reuse http against an adversary: clients read part of a long response
// and leave; the next client must never see a byte of it, and connections
// whose every response was read whole are recycled.
func TestReuseNeverLeaksStaleBytes(t *testing.T) {
	f, addr := startForwarder(t, Config{Remote: startHTTPUpstream(t), Reuse: recycle.HTTP, Pool: pool.Options{Warm: 1}})
	for round := range 60 {
		tag := string(rune('a' + round%26))
		c := dial(t, addr)
		br := bufio.NewReader(c)
		abandon := round%2 == 0
		n := 100
		if abandon {
			n = 4 << 20
		}
		fmt.Fprintf(c, "GET /%s?n=%d HTTP/1.1\r\nHost: test\r\n\r\n", tag, n)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("round %d: %v; want a response (not a stale one)", round, err)
		}
		want := n
		if abandon {
			want = 1000 + rand.IntN(60000)
		}
		got := make([]byte, want)
		if _, err := io.ReadFull(resp.Body, got); err != nil {
			t.Fatalf("round %d: read: %v", round, err)
		}
		if i := bytes.IndexFunc(got, func(r rune) bool { return r != rune(tag[0]) }); i >= 0 {
			t.Fatalf("round %d: byte %d is %q; want only %q: a stale response leaked", round, i, got[i], tag)
		}
		if !abandon {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if k, _ := br.Read(make([]byte, 1)); k > 0 {
				t.Fatalf("round %d: extra byte after the response", round)
			}
		}
		c.Close()
	}
	sum := shutdown(t, f, time.Second)
	if sum.Pool.Reused == 0 {
		t.Errorf("pool stats %+v: no connection was ever recycled; want some", sum.Pool)
	}
	checkHits(t, sum)
	t.Logf("pool: %+v", sum.Pool)
}

// Idle pairs hold only their two sockets in the forwarder: no splice pipe.
func TestIdlePairsHoldNoPipes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd: Linux only")
	}
	up := startUpstream(t, echo)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 0}})
	const pairs = 200
	baseFDs, basePipes := countFDs(t)
	msg := bytes.Repeat([]byte("z"), 4096)
	for range pairs {
		c := dial(t, addr)
		c.Write(msg)
		if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all pairs active", func() bool { return f.Active() == pairs })
	// Pipes the runtime's cache dropped (under -race sync.Pool drops a
	// quarter of them) close only after a GC runs their cleanup: let it, so
	// what is counted is what the pairs hold, which no GC can free.
	var fds, pipes int
	eventually(t, "dropped pipes collected", func() bool {
		runtime.GC()
		fds, pipes = countFDs(t)
		return pipes-basePipes <= 16
	})
	// Per pair: the client's end, the forwarder's two, the upstream's end;
	// the copier on Linux adds its two duplicates in Go's netpoller
	// (streamOf). Slack: the runtime's pipe cache (under -race sync.Pool
	// drops pipes that only a later GC closes) and sockets of the test's
	// own helpers.
	const slack = 64
	perPair := 4
	if testEngine == "copier" {
		perPair = 6
	}
	if d := fds - baseFDs; d > perPair*pairs+slack {
		t.Errorf("fds grew by %d for %d idle pairs; want at most %d (%d per pair in this process)", d, pairs, perPair*pairs+slack, perPair)
	}
	// A relay parked in splice holds a pipe (2 fds) per direction: 800 here.
	if d := pipes - basePipes; d > slack {
		t.Errorf("%d pipe fds for %d idle pairs; want %d at most (the runtime's pipe cache)", d, pairs, slack)
	}
}

func countFDs(t *testing.T) (fds, pipes int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			pipes++
		}
	}
	return len(ents), pipes
}

// bufsHeld counts the relay's pooled buffers taken and not given back, in
// every test (TestMain sets bufsOut); tests do not run in parallel.
var bufsHeld atomic.Int64

// A conversation whose chunks cross the user-space buffer's size (the
// first bytes, kept for a replay with a warm pool) and the replay window's,
// then splice, arrives intact with exact byte counts, and every pooled
// buffer the relay took is back in the pool when the connection has ended.
func TestRelayChunkSizes(t *testing.T) {
	sizes := []int{bufSize + 1, 1, bufSize, replayMax + 1, 3, 1 << 20, 100, 2*bufSize + 7, 1}
	total := 0
	for _, n := range sizes {
		total += n
	}
	for _, warm := range []int{0, 2} {
		t.Run(fmt.Sprintf("warm=%d", warm), func(t *testing.T) {
			held := bufsHeld.Load()
			up := startUpstream(t, echo)
			f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: warm}})
			c := dial(t, addr)
			for i, n := range sizes {
				msg := pattern([]byte{byte(i), byte(n)}, n)
				errc := make(chan error, 1)
				go func() { _, err := c.Write(msg); errc <- err }()
				got := make([]byte, n)
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("chunk %d (%d bytes): read %v, intact %v", i, n, err, bytes.Equal(got, msg))
				}
				if err := <-errc; err != nil {
					t.Fatalf("chunk %d: write: %v", i, err)
				}
			}
			c.CloseWrite()
			if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
				t.Fatalf("after EOF: read %d bytes, %v; want a clean EOF", len(b), err)
			}
			c.Close()
			sum := shutdown(t, f, time.Second)
			r := sum.Connections
			if len(r) != 1 || r[0].BytesUp != int64(total) || r[0].BytesDown != int64(total) || r[0].Error != "" {
				t.Fatalf("records = %+v; want one clean connection with %d bytes each way", r, total)
			}
			if n := bufsHeld.Load() - held; n != 0 {
				t.Fatalf("%d pooled buffers not given back after the connection ended", n)
			}
		})
	}
}

// A client whose whole request, EOF included, arrives while a warm
// upstream has not spoken goes through user space (kept for a replay) from
// its first byte to its EOF: the reply is whole and every buffer goes back.
func TestRelayFirstBytesThenEOF(t *testing.T) {
	held := bufsHeld.Load()
	up := startUpstream(t, replyAfterEOF)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 2}})
	eventually(t, "two warm connections idle", func() bool { return f.pool.Stats().Idle >= 2 })
	for _, size := range []int{1, bufSize - 1, bufSize + 1, 3 * bufSize} {
		if err := roundTrip(addr, size); err != nil {
			t.Fatal(err)
		}
	}
	sum := shutdown(t, f, time.Second)
	if sum.Pool.Hits == 0 {
		t.Fatalf("pool = %+v; want warm connections used", sum.Pool)
	}
	if n := bufsHeld.Load() - held; n != 0 {
		t.Fatalf("%d pooled buffers not given back after the connections ended", n)
	}
}

// A client that reads slowly makes the forwarder wait on it with bytes in
// hand, in both directions at once, and still gets every byte in order.
func TestRelaySlowReader(t *testing.T) {
	up := startUpstream(t, echo)
	_, addr := startForwarder(t, Config{Remote: up.addr(), Pool: pool.Options{Warm: 1}})
	c := dial(t, addr)
	const size = 8 << 20
	msg := pattern([]byte("slow"), size)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		c.CloseWrite()
		errc <- err
	}()
	got := make([]byte, 0, size)
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		if i%8 == 0 {
			time.Sleep(2 * time.Millisecond) // let the socket buffers and the pipe fill up
		}
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes, intact %v; want the %d sent", len(got), bytes.Equal(got, msg), size)
	}
}
