package main

// The four measurements. Each starts a fresh forwarder, measures, stops it
// and returns its metrics (see report.go for the names).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// bulk: one TCP stream client -> forwarder -> sink. The rate is what the
// sink received in a window that starts after a warm-up, so connection setup
// and slow start are not in it.
func (b *bench) bulk(p peer) (map[string]float64, error) {
	return b.bulkThrough(p, func() (*forwarder, error) { return b.start(p, "", b.sink.addr(), false) })
}

// bulkThrough is bulk through the forwarder start starts.
func (b *bench) bulkThrough(p peer, start func() (*forwarder, error)) (map[string]float64, error) {
	f, err := start()
	if err != nil {
		return nil, err
	}
	defer f.stop()
	return b.measureBulk(f, func() (net.Conn, error) { return net.DialTimeout("tcp", f.addr, 5*time.Second) }, b.sink)
}

// measureBulk writes through f on a connection from dial for the window,
// counting what sink received.
func (b *bench) measureBulk(f *forwarder, dial func() (net.Conn, error), sink *server) (map[string]float64, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	goSafe(func() { wrote <- writeUntil(c, stop, b.cfg.warmup+b.cfg.bulkTime+10*time.Second) })

	time.Sleep(b.cfg.warmup)
	hb0, ht0 := hostCPU()
	b0, c0, t0 := sink.bytes.Load(), f.cpu(), time.Now()
	time.Sleep(b.cfg.bulkTime)
	b1, c1, t1 := sink.bytes.Load(), f.cpu(), time.Now()
	hb1, ht1 := hostCPU()
	close(stop)
	c.Close()
	if err := <-wrote; err != nil && !errors.Is(err, net.ErrClosed) {
		return nil, fmt.Errorf("write: %w", err)
	}

	secs, n := t1.Sub(t0).Seconds(), float64(b1-b0)
	if n <= 0 {
		return nil, errors.New("no bytes reached the sink")
	}
	m := map[string]float64{mMiBps: n / mib / secs, mHostCPU: hostBusy(hb0, ht0, hb1, ht1)}
	if f.proc != nil {
		cpu := float64(c1-c0) / 1e9
		m[mCPUPct] = 100 * cpu / secs
		m[mCPUPerGiB] = cpu / (n / gib)
	}
	return m, nil
}

// writeUntil writes 1 MiB chunks to c until stop is closed, a write fails or
// limit has passed.
func writeUntil(c net.Conn, stop <-chan struct{}, limit time.Duration) error {
	buf := bytes.Repeat([]byte("warmport"), mib/8)
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		select {
		case <-stop:
			return nil
		default:
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(buf); err != nil {
			select {
			case <-stop: // the connection was closed under us: done
				return nil
			default:
				return err
			}
		}
	}
	return errors.New("writer ran past its time limit")
}

// conns: b.cfg.clients concurrent clients each connecting, sending one
// HTTP/1.1 GET, reading its whole reply and closing, over and over. Counted
// in a window after a warm-up.
func (b *bench) conns(p peer) (map[string]float64, error) {
	return b.connsThrough(p, func() (*forwarder, error) { return b.start(p, "", b.http.addr(), p.kind == kindWarmport) })
}

// plainDialer connects to the forwarder's address over TCP.
func plainDialer(_ peer, f *forwarder) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", f.addr, 2*time.Second) }
}

// connsThrough is conns through the forwarder start starts (warmport's with
// --json, for its pool hits), with plain TCP clients.
func (b *bench) connsThrough(p peer, start func() (*forwarder, error)) (map[string]float64, error) {
	return b.measureConnsWith(p, start, plainDialer)
}

// measureConns runs the short-connection clients through p to upstream,
// each connection made by dialer(p, f).
func (b *bench) measureConns(p peer, upstream string, dialer func(peer, *forwarder) func() (net.Conn, error)) (map[string]float64, error) {
	return b.measureConnsWith(p, func() (*forwarder, error) { return b.start(p, "", upstream, p.kind == kindWarmport) }, dialer)
}

// measureConnsWith is the short-connection measurement through the
// forwarder start starts, each client connection made by dialer(p, f).
func (b *bench) measureConnsWith(p peer, start func() (*forwarder, error), dialer func(peer, *forwarder) func() (net.Conn, error)) (map[string]float64, error) {
	isWarmport := p.kind == kindWarmport
	f, err := start()
	if err != nil {
		return nil, err
	}
	defer f.stop()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < b.cfg.clients; i++ {
		wg.Add(1)
		goSafe(func() {
			defer wg.Done()
			shortClient(dialer(p, f), stop, &ok, &failed, &firstErr)
		})
	}
	time.Sleep(b.cfg.warmup)
	hb0, ht0 := hostCPU()
	n0, f0, c0, t0 := ok.Load(), failed.Load(), f.cpu(), time.Now()
	time.Sleep(b.cfg.connTime)
	n1, f1, c1, t1 := ok.Load(), failed.Load(), f.cpu(), time.Now()
	hb1, ht1 := hostCPU()
	close(stop)
	wg.Wait() // each client finishes its current exchange, bounded by its deadlines

	n := float64(n1 - n0)
	if n <= 0 {
		return nil, fmt.Errorf("no connection completed: %v", firstErr.Load())
	}
	if f1 > f0 {
		logf("  %s: %d failed connections, first: %v", p.name, f1-f0, firstErr.Load())
	}
	m := map[string]float64{mConnsPerSec: n / t1.Sub(t0).Seconds(), mFailed: float64(f1 - f0),
		mHostCPU: hostBusy(hb0, ht0, hb1, ht1)}
	if f.proc != nil {
		m[mCPUPerConn] = float64(c1-c0) / 1e3 / n
	}
	if isWarmport {
		poolHits(f, p, m)
	}
	return m, nil
}

// shortClient is one of the short-connection clients.
func shortClient(dial func() (net.Conn, error), stop <-chan struct{}, ok, failed *atomic.Int64, firstErr *atomic.Value) {
	resp := make([]byte, len(httpReply))
	end := time.Now().Add(5 * time.Minute) // a bound; stop comes long before
	for time.Now().Before(end) {
		select {
		case <-stop:
			return
		default:
		}
		if err := exchange(dial, resp); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			time.Sleep(time.Millisecond) // no hot loop on a refusing listener
			continue
		}
		ok.Add(1)
	}
}

// exchange makes one connection, sends httpRequest, reads len(resp) bytes
// and checks they are httpReply.
func exchange(dial func() (net.Conn, error), resp []byte) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(httpRequest); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, resp); err != nil {
		return err
	}
	if !bytes.Equal(resp, httpReply) {
		return fmt.Errorf("reply %.80q; want %.80q", resp, httpReply)
	}
	return nil
}

// ttfb: sequential new clients in wpb-cli through the forwarder (also in
// wpb-cli) to the 1-byte echo in wpb-up, across the 10 ms RTT link.
func (b *bench) ttfb(p peer) (map[string]float64, error) {
	return b.measureTTFB(p, b.nsEcho, nil)
}

// measureTTFB runs the ttfb client, with extra flags, through p to upstream
// in wpb-up.
func (b *bench) measureTTFB(p peer, upstream string, extra []string) (map[string]float64, error) {
	isWarmport := p.kind == kindWarmport
	f, err := b.start(p, nsCli, upstream, isWarmport)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	argv := []string{"ip", "netns", "exec", nsCli, b.exe, "__ttfb", "-addr", f.addr,
		"-n", strconv.Itoa(b.cfg.ttfbClients), "-settle", "200ms"}
	argv = append(argv, extra...)
	if f.proc != nil && !isWarmport { // warmport said it listens; a probe would count as a client
		argv = append(argv, "-poll", "10s")
	}
	return b.ttfbRun(p, f, argv)
}

// ttfbRun runs the time-to-first-byte client argv against f (nil: the
// client reaches the upstream on its own) and takes its percentiles, and
// warmport's pool hits.
func (b *bench) ttfbRun(p peer, f *forwarder, argv []string) (map[string]float64, error) {
	var abort <-chan struct{}
	if f != nil && f.proc != nil {
		abort = f.proc.exited
	}
	out, err := runHelper("ttfb client", argv, 3*time.Minute, abort)
	if f != nil && f.proc != nil && !f.proc.alive() {
		return nil, f.proc.failure()
	}
	if err != nil {
		return nil, err
	}
	var rep ttfbReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("ttfb client output: %w", err)
	}
	if rep.Failed > 0 {
		logf("  %s: %d of %d clients failed, first: %s", p.name, rep.Failed, rep.Failed+len(rep.MS), rep.FirstError)
	}
	if len(rep.MS) == 0 {
		return nil, fmt.Errorf("no client succeeded: %s", rep.FirstError)
	}
	m := map[string]float64{mP50: percentile(rep.MS, 50), mP90: percentile(rep.MS, 90), mP99: percentile(rep.MS, 99)}
	if p.kind == kindWarmport {
		poolHits(f, p, m)
	}
	return m, nil
}

// poolHits stops warmport (started with --json) and adds its pool's hits and
// misses to m.
func poolHits(f *forwarder, p peer, m map[string]float64) {
	var sum struct {
		Pool struct {
			Hits   float64 `json:"hits"`
			Misses float64 `json:"misses"`
		} `json:"pool"`
	}
	stdout := f.stop()
	if err := json.Unmarshal(stdout, &sum); err != nil {
		logf("  %s: cannot read the --json summary (%v): %.200q", p.name, err, stdout)
		return
	}
	m[mHits], m[mMisses] = sum.Pool.Hits, sum.Pool.Misses
}

// idleQuiet is how long the idle connections sit before they are measured.
const idleQuiet = 3 * time.Second

// idle: open b.cfg.idleConns connections through the forwarder, exchange one
// byte on each so every pair is fully set up, and compare the forwarder
// tree's descriptors and memory with its footprint before the first one.
func (b *bench) idle(p peer) (map[string]float64, error) {
	return b.measureIdle(p, b.echo.addr(), b.cfg.idleConns)
}

// measureIdle opens n idle connections through p to upstream.
func (b *bench) measureIdle(p peer, upstream string, n int) (map[string]float64, error) {
	f, err := b.start(p, "", upstream, false)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	if f.proc == nil {
		return nil, errors.New("no forwarder process to measure")
	}
	f.proc.settle(3 * time.Second)
	before := memOf(f.proc.pid())

	conns, failed, firstErr := openIdle(f.addr, n, time.Minute)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if len(conns) == 0 {
		return nil, fmt.Errorf("no connection opened: %v", firstErr)
	}
	if failed > 0 {
		logf("  %s: %d of %d idle connections failed, first: %v", p.name, failed, n, firstErr)
	}
	// Measure connections that are idle, not ones that just moved a byte:
	// every peer gets the same quiet time (warmport parks an idle direction
	// after 1 s and returns the freed stacks to the OS a second later).
	time.Sleep(idleQuiet)
	after := memOf(f.proc.pid())
	if after.firstErr != nil && after.procs == 0 {
		return nil, after.firstErr
	}
	open := float64(len(conns))
	return map[string]float64{
		mFDs: float64(after.fds-before.fds) / open,
		mRSS: float64(after.rssKiB-before.rssKiB) / open,
		mPSS: float64(after.pssKiB-before.pssKiB) / open,
	}, nil
}

// openIdle opens n connections (32 at a time), each after a 1-byte
// request/reply, and returns the ones that worked.
func openIdle(addr string, n int, limit time.Duration) (conns []net.Conn, failed int, firstErr error) {
	var mu sync.Mutex
	var next atomic.Int64
	end := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		goSafe(func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && time.Now().Before(end) {
				c, err := openOne(addr)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns, failed, firstErr
}

func openOne(addr string) (net.Conn, error) {
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err = c.Write([]byte{'i'})
	if err == nil {
		_, err = io.ReadFull(c, b[:])
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
