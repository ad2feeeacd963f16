package main

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// server is one of the benchmark's upstreams: a TCP listener whose
// connections are all served by the same handler (sink or echo).
type server struct {
	ln      net.Listener
	handler func(s *server, c net.Conn)
	bytes   atomic.Int64 // bytes read from all connections so far

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startServer listens on addr and serves every connection with handler until
// close.
func startServer(addr string, handler func(s *server, c net.Conn)) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return serveListener(ln, handler), nil
}

// serveListener serves every connection ln accepts with handler until close.
func serveListener(ln net.Listener, handler func(s *server, c net.Conn)) *server {
	s := &server{ln: ln, handler: handler, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	goSafe(s.acceptLoop)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// acceptLoop ends when close closes the listener.
func (s *server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.conns == nil { // closing
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		goSafe(func() {
			defer s.wg.Done()
			defer s.forget(c)
			s.handler(s, c)
		})
	}
}

func (s *server) forget(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// close stops accepting, closes every open connection and waits for the
// handlers to return.
func (s *server) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// The short-connection test speaks HTTP/1.1, so that warmport's --reuse http
// can recycle its upstreams: one GET per client connection, answered with a
// Content-Length body on a connection the server keeps open for the next
// request.
var (
	httpRequest = []byte("GET / HTTP/1.1\r\nHost: peerbench\r\n\r\n")
	httpReply   = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
)

// httpOK answers every request on c (a request line and headers; none of
// the bench's requests has a body) with httpReply, until EOF.
func httpOK(s *server, c net.Conn) {
	buf := make([]byte, 0, 4<<10)
	rd := make([]byte, 4<<10)
	for {
		n, err := c.Read(rd)
		s.bytes.Add(int64(n))
		buf = append(buf, rd[:n]...)
		for {
			i := bytes.Index(buf, []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			buf = append(buf[:0], buf[i+4:]...)
			if _, werr := c.Write(httpReply); werr != nil {
				return
			}
		}
		if err != nil || len(buf) > 64<<10 { // EOF, or not a client of ours
			return
		}
	}
}

// sink reads and discards until EOF, counting bytes (the bulk upstream).
func sink(s *server, c net.Conn) {
	buf := make([]byte, 1<<20)
	for {
		n, err := c.Read(buf)
		s.bytes.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// echo writes back whatever it reads until EOF (the 64-byte request/reply
// upstream, the 1-byte time-to-first-byte upstream and the idle upstream).
// A plain read/write loop rather than io.Copy: io.Copy would splice through a
// pipe and cost two extra descriptors per connection.
func echo(s *server, c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		s.bytes.Add(int64(n))
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
