package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadResult is one client of the load: the phase it started and ended in.
type loadResult struct {
	client     string
	start, end int32
	err        error
}

// Failover both ways under load, through the real binary: REMOTE A,B.
// A crashes (listener and connections closed): every client that starts
// after it is served by B, none fails. A comes back (it is retried after
// its back-off) and B crashes: A serves again, none fails. One line when a
// candidate goes down and one when it comes back; records name the
// candidate that served.
func TestFailoverUnderLoad(t *testing.T) {
	a := startUpstream(t, echo)
	b := startUpstream(t, echo)
	aAddr, bAddr := a.addr(), b.addr()
	p := startWarmport(t, "forward", "--json", "-q", "--warm", "2", "127.0.0.1:0", aAddr+","+bAddr)
	addr := p.waitReady(t)
	if !strings.Contains(p.Output(), "-> "+aAddr+","+bAddr) {
		t.Errorf("ready line does not show the candidates:\n%s", p.Output())
	}

	var phase atomic.Int32 // 0 both up, 1 A down, 2 A back, 3 B down
	var (
		mu      sync.Mutex
		results []loadResult
		ok      [4]atomic.Int64 // clients served within each phase
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := phase.Load()
				client, err := echoFrom(addr, fmt.Sprintf("client %d\n", i))
				r := loadResult{client: client, start: start, end: phase.Load(), err: err}
				if r.start == r.end && err == nil {
					ok[r.start].Add(1)
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // the load's pace, not a wait for anything
			}
		}()
	}
	// waitServed waits (bounded) until n clients were served within ph.
	waitServed := func(ph int32, n int64) {
		t.Helper()
		deadline := time.Now().Add(ioTimeout)
		for ok[ph].Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("phase %d: %d clients served in %v; want %d", ph, ok[ph].Load(), ioTimeout, n)
			}
			time.Sleep(10 * time.Millisecond) // other goroutines' progress: poll
		}
	}

	waitServed(0, 50)
	a.Close()
	phase.Store(1)
	waitStderr(t, p, "warmport: upstream "+aAddr+" is down")
	waitServed(1, 200)

	a = startUpstreamOn(t, aAddr, echo)
	phase.Store(2)
	// A is retried when its back-off (1 s, then 2 s, ...) ends: by a refill.
	waitStderr(t, p, "warmport: upstream "+aAddr+" is back")
	waitServed(2, 50)
	// B crashes: nothing may still lead to it (the idle connections were
	// flushed when A came back). No line: no dial tries B while A works.
	b.Close()
	phase.Store(3)
	waitServed(3, 200)
	close(stop)
	wg.Wait()

	res := p.stop(t)
	s := parseSummary(t, res.stdout)
	byClient := map[string]jsonRecord{}
	for _, r := range s.Connections {
		byClient[r.Client] = r
	}
	var failed, straddled int
	servedBy := map[int32]map[string]int{1: {}, 3: {}}
	for _, r := range results {
		if r.start != r.end {
			straddled++ // in flight when a candidate crashed: it may fail as a direct connection would
			continue
		}
		if r.err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("phase %d: client %s failed: %v", r.start, r.client, r.err)
			}
			continue
		}
		if rec, found := byClient[r.client]; found && servedBy[r.start] != nil {
			servedBy[r.start][rec.Upstream]++
		}
	}
	if failed > 0 {
		t.Errorf("%d clients failed while a candidate was healthy; want 0", failed)
	}
	// Records kept are the newest: phase 3's are all there.
	if n := servedBy[3][aAddr]; n == 0 || len(servedBy[3]) != 1 {
		t.Errorf("phase 3 (B down) served by %v; want only %s", servedBy[3], aAddr)
	}
	if len(servedBy[1]) > 0 && (servedBy[1][bAddr] == 0 || len(servedBy[1]) != 1) {
		t.Errorf("phase 1 (A down) served by %v; want only %s", servedBy[1], bAddr)
	}
	for _, tc := range []struct {
		line string
		n    int
	}{{aAddr + " is down", 1}, {aAddr + " is back", 1}, {bAddr + " is down", 0}} {
		if n := strings.Count(res.stderr, "warmport: upstream "+tc.line); n != tc.n {
			t.Errorf("lines %q: got %d; want %d\nstderr:\n%s", tc.line, n, tc.n, res.stderr)
		}
	}
	t.Logf("%d clients (%d in flight at a crash), failed %d; totals %+v", len(results), straddled, failed, s.Totals)
}

// echoFrom sends msg through addr to an echo upstream and returns the
// client's address and an error unless msg came back whole, then EOF.
func echoFrom(addr, msg string) (string, error) {
	c, err := dialClient(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	client := c.LocalAddr().String()
	if _, err := c.Write([]byte(msg)); err != nil {
		return client, err
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		return client, fmt.Errorf("echo: got %q, %v; want %q then EOF", got, err, msg)
	}
	return client, nil
}
