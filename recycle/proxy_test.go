package recycle

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recProxy is a tiny TCP proxy that feeds every relayed chunk to a Tracker (before
// passing it on, as a relay must) and logs Clean() after each chunk, so a test can check
// that Clean was true exactly at the boundaries it knows of.
type recProxy struct {
	ln       net.Listener
	upstream string
	proto    Protocol

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every event
	conns   []*recConn
}

type recConn struct {
	tr            Tracker
	reqN, respN   int
	events        []event
	respSinceMark []byte // response bytes since the last mark (bounded)
}

type event struct {
	req   bool
	clean bool
}

const waitTimeout = 30 * time.Second

func newRecProxy(t *testing.T, p Protocol, upstream string) *recProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &recProxy{ln: ln, upstream: upstream, proto: p, changed: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				t.Errorf("proxy: %v", err)
				c.Close()
				return
			}
			rp.mu.Lock()
			rc := &recConn{tr: p.NewTracker()}
			rp.conns = append(rp.conns, rc)
			rp.notify()
			rp.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); rp.pipe(rc, c, u, true) }()
			go func() { defer wg.Done(); rp.pipe(rc, u, c, false) }()
			t.Cleanup(func() { c.Close(); u.Close() })
		}
	}()
	return rp
}

func (rp *recProxy) addr() string { return rp.ln.Addr().String() }

func (rp *recProxy) notify() {
	close(rp.changed)
	rp.changed = make(chan struct{})
}

// pipe copies src to dst in small reads so that large replies arrive in many chunks.
func (rp *recProxy) pipe(rc *recConn, src, dst net.Conn, req bool) {
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			rp.mu.Lock()
			if req {
				rc.tr.Request(buf[:n])
				rc.reqN += n
			} else {
				rc.tr.Response(buf[:n])
				rc.respN += n
				if len(rc.respSinceMark) < 64<<10 {
					rc.respSinceMark = append(rc.respSinceMark, buf[:n]...)
				}
			}
			rc.events = append(rc.events, event{req: req, clean: rc.tr.Clean()})
			rp.notify()
			rp.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// waitFor blocks until cond (called under the lock) holds.
func (rp *recProxy) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		rp.mu.Lock()
		ok, ch := cond(), rp.changed
		rp.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("proxy: no %s within %v", what, waitTimeout)
		}
	}
}

// conn returns the i-th proxied connection, waiting for it.
func (rp *recProxy) conn(t *testing.T, i int) *recConn {
	t.Helper()
	rp.waitFor(t, "connection", func() bool { return len(rp.conns) > i })
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.conns[i]
}

// clean returns the tracker's verdict now.
func (rp *recProxy) clean(rc *recConn) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rc.tr.Clean()
}

// mark checks the events since the last mark: every one false, except the last when
// wantClean (the exchange ended at a boundary). It returns the response bytes seen.
func (rp *recProxy) mark(t *testing.T, rc *recConn, what string, wantClean bool) []byte {
	t.Helper()
	rp.mu.Lock()
	evs, resp := rc.events, rc.respSinceMark
	rc.events, rc.respSinceMark = nil, nil
	rp.mu.Unlock()
	if len(evs) == 0 {
		t.Fatalf("%s: the proxy relayed nothing", what)
	}
	for i, e := range evs {
		want := wantClean && i == len(evs)-1
		if e.clean != want {
			t.Fatalf("%s: Clean() = %v after chunk %d of %d (request side: %v); want %v", what, e.clean, i+1, len(evs), e.req, want)
		}
	}
	return resp
}

// readAll drains r, for clients that only need the bytes gone.
func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return b
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
