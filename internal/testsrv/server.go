package testsrv

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Handler serves one connection; the server closes c when it returns.
// leave, which a handler may call, stops counting c as open before that:
// for a test that must see the count drop before the server answers.
type Handler func(c net.Conn, leave func())

// Server is a tracked-connection server: it runs a Handler for each
// connection it accepts, counts what it accepted and holds open, and
// closes every connection and waits for every handler when the test ends.
type Server struct {
	t       testing.TB
	network string
	addr    string // what Listen gave: host:port, or the socket's path
	handle  Handler

	mu       sync.Mutex
	ln       net.Listener        // nil once closed
	conns    map[string]*tracked // by the client's address
	accepted int
	open     int
	peak     int
	changed  chan struct{} // closed and replaced at every change of the counts
	wg       sync.WaitGroup
}

type tracked struct {
	c     net.Conn
	ended chan struct{} // closed once the handler returned and c is closed
}

// Serve serves handle on network ("tcp" or "unix") at address
// ("127.0.0.1:0", a fixed HOST:PORT, or a socket path; "" means
// 127.0.0.1:0, or up.sock in a temporary directory) until the test ends.
func Serve(t testing.TB, network, address string, handle Handler) *Server {
	t.Helper()
	if address == "" {
		address = "127.0.0.1:0"
		if network == "unix" {
			address = t.TempDir() + "/up.sock"
		}
	}
	s := &Server{t: t, network: network, addr: address, handle: handle,
		conns: map[string]*tracked{}, changed: make(chan struct{})}
	s.listen()
	t.Cleanup(s.Close)
	return s
}

// Echo is a Handler that sends back what it reads, through a user-space
// buffer (the wrappers hide ReadFrom and WriteTo, so the server never
// splices and holds no pipe that a test's fd count would blame on its
// subject), and then passes the client's EOF on.
func Echo(c net.Conn, _ func()) {
	io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c})
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (s *Server) listen() {
	s.t.Helper()
	ln, err := net.Listen(s.network, s.addr)
	if err != nil {
		s.t.Fatalf("listen on %s %s: %v", s.network, s.addr, err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.wg.Add(1)
	s.mu.Unlock()
	go s.accept(ln)
}

// Addr is the address the server listens on: HOST:PORT, or the socket's path.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := &tracked{c: c, ended: make(chan struct{})}
		s.mu.Lock()
		if s.ln != ln { // closed meanwhile: CloseConns has run and would miss c
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c.RemoteAddr().String()] = tc
		s.accepted++
		s.open++
		s.peak = max(s.peak, s.open)
		s.changedLocked()
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(tc)
	}
}

func (s *Server) serve(tc *tracked) {
	defer s.wg.Done()
	var once sync.Once
	leave := func() {
		once.Do(func() {
			s.mu.Lock()
			s.open--
			s.changedLocked()
			s.mu.Unlock()
		})
	}
	s.handle(tc.c, leave)
	tc.c.Close()
	leave()
	close(tc.ended)
}

func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Accepted is how many connections the server has accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Open is how many connections the server holds open now (a handler that
// called leave no longer counts).
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Peak is the most connections the server held open at once.
func (s *Server) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// WaitAccepted waits until the server has accepted at least n connections.
func (s *Server) WaitAccepted(t testing.TB, n int) {
	t.Helper()
	s.waitFor(t, func() bool { return s.accepted >= n }, func() string {
		return fmt.Sprintf("the server accepted %d connections in %v; want %d", s.accepted, Timeout, n)
	})
}

// WaitOpen waits until the server holds exactly n connections open.
func (s *Server) WaitOpen(t testing.TB, n int) {
	t.Helper()
	s.waitFor(t, func() bool { return s.open == n }, func() string {
		return fmt.Sprintf("the server holds %d connections open after %v; want %d", s.open, Timeout, n)
	})
}

// waitFor waits, bounded by Timeout, until cond (called with s.mu held)
// holds, woken by every change of the counts.
func (s *Server) waitFor(t testing.TB, cond func() bool, fail func() string) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		var msg string
		if !ok {
			msg = fail()
		}
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatal(msg)
		}
	}
}

// Ended returns a channel closed once the server has closed its end of the
// client's connection c, waiting (bounded) for the server to accept it.
func (s *Server) Ended(t testing.TB, c net.Conn) <-chan struct{} {
	t.Helper()
	var tc *tracked
	client := c.LocalAddr().String()
	s.waitFor(t, func() bool { tc = s.conns[client]; return tc != nil }, func() string {
		return fmt.Sprintf("the server did not accept %s within %v", client, Timeout)
	})
	return tc.ended
}

// CloseConns closes every connection the server holds, and goes on
// listening.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tc := range s.conns {
		tc.c.Close()
	}
}

// Close stops listening, closes every connection and waits (bounded) for
// the handlers to return. It may be called more than once; the test's end
// calls it too.
func (s *Server) Close() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	s.mu.Unlock()
	s.CloseConns()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(Timeout):
		s.t.Errorf("the server's handlers still run %v after Close", Timeout)
	}
}

// Reopen listens again on the address Close left: a server restarted on
// the same port. The counts go on.
func (s *Server) Reopen(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	open := s.ln != nil
	s.mu.Unlock()
	if open {
		t.Fatal("Reopen of a server that listens")
	}
	s.listen()
}
