package tlstest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ServerOptions configure Serve. Cert is required.
type ServerOptions struct {
	Cert       *Leaf
	MaxVersion uint16 // 0 means TLS 1.3
	NoTickets  bool   // no session tickets, so no resumption
	// ClientCA set: a client certificate signed by it is required.
	ClientCA *CA
	// RequestCert: ask for a client certificate but accept none. A TLS 1.3
	// server then sends its tickets only after the client's Finished, as
	// OpenSSL servers always do.
	RequestCert bool
	// Handle runs after a successful handshake; nil means Echo.
	Handle func(tc *tls.Conn)
	// Unix, if set, is the path of a Unix socket to serve on instead of a
	// TCP port on 127.0.0.1; Addr is then that path.
	Unix string
	// WrapConn, if set, wraps each accepted socket before TLS runs over it:
	// a test's way to split records or to see what the socket carries.
	WrapConn func(net.Conn) net.Conn
}

// Server is an in-process TLS server on 127.0.0.1, closed by t's cleanup.
type Server struct {
	Addr     string
	Full     atomic.Int64 // full handshakes that succeeded
	Resumed  atomic.Int64 // resumed handshakes that succeeded
	Failed   atomic.Int64 // handshakes that failed
	Accepted atomic.Int64 // connections accepted

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	errs  chan error
}

// Serve starts a server.
func Serve(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	cfg := &tls.Config{
		Certificates:           []tls.Certificate{o.Cert.TLS},
		MaxVersion:             o.MaxVersion,
		SessionTicketsDisabled: o.NoTickets,
	}
	switch {
	case o.ClientCA != nil:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = o.ClientCA.Pool
	case o.RequestCert:
		cfg.ClientAuth = tls.RequestClientCert
	}
	handle := o.Handle
	if handle == nil {
		handle = Echo
	}
	network, address := "tcp", "127.0.0.1:0"
	if o.Unix != "" {
		network, address = "unix", o.Unix
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}, errs: make(chan error, 64)}
	s.wg.Add(1)
	go s.accept(cfg, handle, o.WrapConn)
	t.Cleanup(s.Close)
	return s
}

// HandshakeErrors returns the server's handshake errors so far (what it saw
// of a bad client certificate, say), without waiting.
func (s *Server) HandshakeErrors() []error {
	var errs []error
	for {
		select {
		case err := <-s.errs:
			errs = append(errs, err)
		default:
			return errs
		}
	}
}

// Close stops the server and closes its connections, and waits for its
// goroutines.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(cfg *tls.Config, handle func(*tls.Conn), wrap func(net.Conn) net.Conn) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.Accepted.Add(1)
		var under net.Conn = c
		if wrap != nil {
			under = wrap(c)
		}
		go s.serve(c, tls.Server(under, cfg), handle)
	}
}

func (s *Server) serve(c net.Conn, tc *tls.Conn, handle func(*tls.Conn)) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		s.Failed.Add(1)
		select {
		case s.errs <- err:
		default:
		}
		return
	}
	c.SetDeadline(time.Time{})
	if tc.ConnectionState().DidResume {
		s.Resumed.Add(1)
	} else {
		s.Full.Add(1)
	}
	handle(tc)
}

// Echo copies what the client sends back to it; at the client's
// close_notify it sends its own and waits for the client to close.
func Echo(tc *tls.Conn) {
	io.Copy(tc, tc)
	tc.CloseWrite()
	io.Copy(io.Discard, tc)
}

// Banner sends banner right after the handshake, as SMTPS and IMAPS servers
// do, then echoes.
func Banner(banner string) func(*tls.Conn) {
	return func(tc *tls.Conn) {
		if _, err := tc.Write([]byte(banner)); err != nil {
			return
		}
		Echo(tc)
	}
}

// CloseNotifyWhenIdle sends close_notify if the client sends nothing for d,
// keeping the socket open (so a probe sees the alert, not a FIN), and
// otherwise echoes.
func CloseNotifyWhenIdle(d time.Duration) func(*tls.Conn) {
	return func(tc *tls.Conn) {
		tc.SetReadDeadline(time.Now().Add(d))
		var b [1]byte
		n, err := tc.Read(b[:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tc.CloseWrite()
			tc.SetReadDeadline(time.Time{})
			io.Copy(io.Discard, tc)
			return
		}
		tc.SetReadDeadline(time.Time{})
		if n > 0 {
			tc.Write(b[:n])
		}
		Echo(tc)
	}
}

// Reset resets the connection (SO_LINGER 0; a Unix socket just closes)
// right after the handshake.
func Reset(tc *tls.Conn) {
	if c, ok := tc.NetConn().(*net.TCPConn); ok {
		c.SetLinger(0)
	}
	tc.NetConn().Close()
}

// Hold keeps the connection open and silent until the client closes it.
func Hold(tc *tls.Conn) { io.Copy(io.Discard, tc) }
