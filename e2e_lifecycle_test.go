package main

// End-to-end tests of a forwarder's life: the drain on SIGTERM, the idle
// timeout, exiting when idle, and the bound on concurrent clients.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDrainOnSIGTERM: SIGTERM lets transfers in flight finish with every
// byte; --drain-timeout bounds the wait for a connection that never ends;
// a second SIGTERM ends the drain at once. Each way the exit status is 0.
func TestDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("transfers in flight complete", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, echo)
		p := startWarmport(t, "forward", "--json", "0", up.addr())
		addr := p.waitReady(t)

		const clients, size = 4, 4 << 20
		termed := make(chan struct{}) // closed once the forwarder is draining
		closeTermed := sync.OnceFunc(func() { close(termed) })
		defer closeTermed() // never leave a client waiting, even on failure
		started := make(chan struct{}, clients)
		type result struct {
			client string
			got    int64
			err    error
		}
		res := make([]result, clients)
		var wg sync.WaitGroup
		for i := range res {
			wg.Add(1)
			go func(i int, r *result) {
				defer wg.Done()
				r.client, r.got, r.err = slowEcho(addr, byte(i), size, started, termed)
			}(i, &res[i])
		}
		for range clients { // every transfer has started to come back
			select {
			case <-started:
			case <-time.After(ioTimeout):
				t.Fatalf("transfers did not start within %v", ioTimeout)
			}
		}
		p.signal(t, syscall.SIGTERM)
		waitDraining(t, addr)
		closeTermed() // only now do the clients send their second half
		wg.Wait()
		for _, r := range res {
			if r.err != nil {
				t.Errorf("transfer in flight at SIGTERM: %v", r.err)
			}
		}
		r := p.wait(t, exitTimeout)
		if r.status != 0 {
			t.Errorf("exit status: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
		}
		sum := parseSummary(t, r.stdout)
		for _, c := range res {
			rec := sum.record(t, c.client)
			if (rec.ClosedBy != "client" && rec.ClosedBy != "remote") || rec.BytesUp != size || rec.BytesDown != size {
				t.Errorf("record of %s: got closed_by %q up %d down %d; want client or remote, %d both ways",
					c.client, rec.ClosedBy, rec.BytesUp, rec.BytesDown, size)
			}
		}
		for _, rec := range sum.Connections {
			if rec.ClosedBy == "shutdown" {
				t.Errorf("record %d of %s: got closed_by %q; want no connection cut by the drain", rec.ID, rec.Client, rec.ClosedBy)
			}
		}
	})

	// hang opens a connection through the forwarder at addr that stays
	// open (an echo upstream, nothing more sent) and checks it relays.
	hang := func(t *testing.T, addr string) *net.TCPConn {
		t.Helper()
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		b := make([]byte, 1)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("read the echo: %v", err)
		}
		return c
	}
	// cut checks that c was closed by the forwarder and the summary says
	// closed_by "shutdown".
	cut := func(t *testing.T, c *net.TCPConn, r result) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			t.Errorf("client after the exit: read got %d bytes, %v; want EOF or a reset", n, err)
		}
		if r.status != 0 {
			t.Errorf("exit status: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
		}
		sum := parseSummary(t, r.stdout)
		if rec := sum.record(t, c.LocalAddr().String()); rec.ClosedBy != "shutdown" {
			t.Errorf("closed_by of the connection that never ended: got %q; want %q", rec.ClosedBy, "shutdown")
		}
	}

	t.Run("drain timeout", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, echo)
		p := startWarmport(t, "forward", "--json", "--drain-timeout", "500ms", "0", up.addr())
		c := hang(t, p.waitReady(t))
		p.signal(t, syscall.SIGTERM)
		cut(t, c, p.wait(t, exitTimeout))
	})

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run("second "+sigName(sig), func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, echo)
			// The drain would wait 10 minutes: only the second signal can end
			// it within exitTimeout.
			p := startWarmport(t, "forward", "--json", "--drain-timeout", "10m", "0", up.addr())
			addr := p.waitReady(t)
			c := hang(t, addr)
			p.signal(t, sig)
			waitDraining(t, addr)
			if p.exited() {
				t.Fatalf("warmport exited during the drain with a connection open\nstderr:\n%s", p.Output())
			}
			p.signal(t, sig)
			cut(t, c, p.wait(t, exitTimeout))
		})
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

// slowEcho sends size bytes drawn from seed to an echo upstream through addr
// and reads them back slowly, checking them with sha256. It signals started
// when the first bytes came back, and sends the second half only once
// termed is closed, so the transfer is in flight whenever that happens.
func slowEcho(addr string, seed byte, size int64, started chan<- struct{}, termed <-chan struct{}) (client string, got int64, err error) {
	c, err := dialClient(addr)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	client = c.LocalAddr().String()
	wh := sha256.New()
	werr := make(chan error, 1)
	go func() {
		src := io.TeeReader(stream([32]byte{seed}), wh)
		if _, err := io.CopyN(c, src, size/2); err != nil {
			werr <- err
			return
		}
		<-termed
		if _, err := io.CopyN(c, src, size-size/2); err != nil {
			werr <- err
			return
		}
		werr <- c.CloseWrite()
	}()
	rh := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && got == 0 {
			started <- struct{}{}
		}
		got += int64(n)
		rh.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return client, got, fmt.Errorf("%s: read after %d bytes: %w", client, got, err)
		}
		time.Sleep(2 * time.Millisecond) // a slow consumer
	}
	if err := <-werr; err != nil {
		return client, got, fmt.Errorf("%s: write: %w", client, err)
	}
	if got != size || !bytes.Equal(rh.Sum(nil), wh.Sum(nil)) {
		return client, got, fmt.Errorf("%s: echoed %d bytes, sha256 %x; want %d bytes, sha256 %x", client, got, rh.Sum(nil), size, wh.Sum(nil))
	}
	return client, got, nil
}

// TestIdleTimeout: a connection with no byte either way for --idle-timeout
// is closed (closed_by "timeout"); steady traffic in one direction only
// keeps a connection open.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	const tick, span = 100 * time.Millisecond, 3 * idle
	start := func(t *testing.T, h handler) (*proc, string) {
		t.Helper()
		up := startUpstream(t, h)
		p := startWarmport(t, "forward", "--json", "--idle-timeout", idle.String(), "0", up.addr())
		return p, p.waitReady(t)
	}

	t.Run("no traffic", func(t *testing.T) {
		t.Parallel()
		p, addr := start(t, echo)
		t0 := time.Now()
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(idle + exitTimeout))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("idle client: read got %d bytes, %v; want EOF or a reset", n, err)
		}
		if d := time.Since(t0); d < idle*9/10 {
			t.Errorf("idle connection closed after %v; want about --idle-timeout %v", d, idle)
		}
		sum := parseSummary(t, p.stop(t).stdout)
		if rec := sum.record(t, c.LocalAddr().String()); rec.ClosedBy != "timeout" {
			t.Errorf("closed_by: got %q; want %q", rec.ClosedBy, "timeout")
		}
	})

	t.Run("traffic up only", func(t *testing.T) {
		t.Parallel()
		p, addr := start(t, sink)
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		sent := 0
		for end := time.Now().Add(span); time.Now().Before(end); sent++ {
			if _, err := c.Write([]byte{'.'}); err != nil {
				t.Fatalf("write after %d ticks: %v", sent, err)
			}
			time.Sleep(tick) // the steady traffic itself
		}
		c.CloseWrite()
		if rest, err := io.ReadAll(c); len(rest) != 0 || err != nil {
			t.Fatalf("after CloseWrite: got %q, %v; want EOF", rest, err)
		}
		sum := parseSummary(t, p.stop(t).stdout)
		rec := sum.record(t, c.LocalAddr().String())
		if rec.ClosedBy != "client" || rec.BytesUp != int64(sent) {
			t.Errorf("record: got closed_by %q up %d; want %q up %d (not closed by the idle timeout)", rec.ClosedBy, rec.BytesUp, "client", sent)
		}
	})

	t.Run("traffic down only", func(t *testing.T) {
		t.Parallel()
		p, addr := start(t, ticker(tick))
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(span)) // read the ticks for span
		got, err := io.Copy(io.Discard, c)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("reading ticks for %v: got %d bytes, %v; want the read deadline (not EOF: the idle timeout must not fire)", span, got, err)
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		c.CloseWrite()
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			t.Fatalf("after CloseWrite: %v; want EOF", err)
		}
		got += n
		sum := parseSummary(t, p.stop(t).stdout)
		rec := sum.record(t, c.LocalAddr().String())
		if rec.ClosedBy != "client" || rec.BytesDown != got {
			t.Errorf("record: got closed_by %q down %d; want %q down %d (not closed by the idle timeout)", rec.ClosedBy, rec.BytesDown, "client", got)
		}
	})
}

// TestExitIdle: with no connection, --exit-idle ends the process (status 0)
// by itself; with a connection open, it waits for it.
func TestExitIdle(t *testing.T) {
	t.Parallel()
	t.Run("no connection", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, echo)
		t0 := time.Now()
		p := startWarmport(t, "forward", "--exit-idle", "500ms", "0", up.addr())
		p.waitReady(t)
		r := p.wait(t, exitTimeout)
		if r.status != 0 {
			t.Errorf("exit status: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
		}
		if d := time.Since(t0); d < 500*time.Millisecond {
			t.Errorf("exited after %v; want not before --exit-idle 500ms", d)
		}
	})

	t.Run("connection open", func(t *testing.T) {
		t.Parallel()
		const exitIdle = 2 * time.Second
		up := startUpstream(t, echo)
		p := startWarmport(t, "forward", "--json", "--exit-idle", exitIdle.String(), "0", up.addr())
		addr := p.waitReady(t)
		c, err := dialClient(addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("echo: %v (did --exit-idle %v run out before the client connected?)", err, exitIdle)
		}
		select { // nothing to wait for: the process must not end by itself
		case <-p.Exited():
			t.Fatalf("warmport exited with a connection open (--exit-idle %v)\nstderr:\n%s", exitIdle, p.Output())
		case <-time.After(2 * exitIdle):
		}
		c.CloseWrite()
		if rest, err := io.ReadAll(c); len(rest) != 0 || err != nil {
			t.Fatalf("after CloseWrite: got %q, %v; want EOF", rest, err)
		}
		c.Close()
		r := p.wait(t, exitIdle+exitTimeout)
		if r.status != 0 {
			t.Errorf("exit status: got %d; want 0\nstderr:\n%s", r.status, r.stderr)
		}
		sum := parseSummary(t, r.stdout)
		if rec := sum.record(t, c.LocalAddr().String()); rec.ClosedBy != "client" {
			t.Errorf("closed_by: got %q; want %q", rec.ClosedBy, "client")
		}
	})
}

// TestMaxConns: with --max-conns N and N+5 clients that each hold their
// connection a moment, the upstream never sees more than N of them at once
// (plus the warm connections, which count at the upstream too), and every
// client is served in the end.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	const n, clients, hold = 3, 3 + 5, 300 * time.Millisecond
	for _, warm := range []int{0, 2} {
		t.Run("warm "+strconv.Itoa(warm), func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, holdUntilEOF)
			p := startWarmport(t, "forward", "--json", "--max-conns", strconv.Itoa(n), "--warm", strconv.Itoa(warm),
				"--pool-ttl", "10m", "0", up.addr())
			addr := p.waitReady(t)
			up.WaitAccepted(t, warm)

			errs := make(chan error, clients)
			for range clients {
				go func() {
					c, err := dialClient(addr)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					if _, err := c.Write([]byte("x")); err != nil {
						errs <- fmt.Errorf("write: %w", err)
						return
					}
					time.Sleep(hold) // the client holds its connection a moment
					c.CloseWrite()
					got, err := io.ReadAll(c)
					if err != nil || string(got) != "ok" {
						err = fmt.Errorf("client %s: got %q, %v; want %q, <nil>", c.LocalAddr(), got, err, "ok")
					}
					errs <- err
				}()
			}
			for range clients {
				if err := <-errs; err != nil { // each client has its own deadline
					t.Errorf("client not served: %v", err)
				}
			}
			accepts, peak := up.Accepted(), up.Peak()
			t.Logf("upstream: %d accepts, at most %d at once", accepts, peak)
			if limit := n + warm; peak > limit {
				t.Errorf("connections open at the upstream at once: got %d; want at most %d (--max-conns %d, --warm %d)", peak, limit, n, warm)
			}
			sum := parseSummary(t, p.stop(t).stdout)
			if sum.Totals.Connections != clients || sum.Totals.Failed != 0 {
				t.Errorf("totals connections/failed: got %d/%d; want %d/0", sum.Totals.Connections, sum.Totals.Failed, clients)
			}
		})
	}
}
