package tlsup

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// maxGreeting bounds the application data Probe takes in for the client. A
// banner (SMTPS, IMAPS) is a line or two; beyond this the rest stays in the
// connection, behind the greeting, for Read.
const maxGreeting = 64 << 10

// ErrWriteClosed is Probe's answer for a connection whose write side we
// closed (CloseWrite): it cannot carry another client.
var ErrWriteClosed = errors.New("tlsup: write side closed (close_notify sent)")

// Conn is a client TLS connection whose handshake is done. It is a net.Conn
// whose Read and Write carry the application's bytes, plus what a pooled
// upstream needs: Probe on borrow, CloseWrite for a half-close, Abort for an
// abort.
//
// Read and Write may run at once (one goroutine each); Probe must not run
// while another goroutine reads.
type Conn struct {
	tc         *tls.Conn
	raw        *rawConn
	greeting   []byte // application data Probe read for the client, handed out first by Read
	dead       error  // what Probe found: it never finds the connection alive again
	probedAt   int64  // raw.sent at the last Probe
	wroteClose atomic.Bool
	aborted    atomic.Bool
}

// Dial runs the client handshake over raw, an open connection to the server
// (TCP or Unix), with cfg from Options.Config. ctx bounds the handshake: when
// it is done first, raw is closed and ctx's error returned. Any records the
// server sent with its last flight (TLS 1.3 session tickets) are processed
// before Dial returns, so Probe starts from an empty TLS buffer; application
// data among them is kept for Read. On failure raw is closed and the error is
// a *HandshakeError for Describe; a server that sent application data and
// then closed (or failed) is no failure: Read returns the data, then the end,
// and Probe reports the end.
//
// A TLS 1.3 server judges our client certificate after our side of the
// handshake is done, so when it asked for one Dial waits for its verdict (a
// session ticket, or an alert: the error a user must see at the pre-dial,
// not at a client's first read), up to twice the handshake's time plus
// verdictSlack; a server that sends nothing costs that wait.
func Dial(ctx context.Context, raw net.Conn, cfg *tls.Config) (*Conn, error) {
	rc := newRawConn(raw)
	tc := tls.Client(rc, cfg)
	hctx, hi := withHandshakeInfo(ctx)
	start := time.Now()
	err := tc.HandshakeContext(hctx)
	if err != nil {
		raw.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = ctxErr
		}
		return nil, &HandshakeError{Err: err, ServerName: cfg.ServerName, CertRequested: hi.certRequested, CertSent: hi.certSent}
	}
	c := &Conn{tc: tc, raw: rc}
	if hi.certRequested && tc.ConnectionState().Version == tls.VersionTLS13 {
		err = rc.awaitQueued(ctx, start.Add(3*time.Since(start)+verdictSlack))
	}
	if err == nil {
		if err = c.drain(); err != nil && len(c.greeting) > 0 {
			// The server said something and closed: the client hears it, as
			// over TCP, and Probe calls the connection dead.
			c.dead = err
			return c, nil
		}
	}
	if err != nil {
		c.Abort()
		return nil, &HandshakeError{Err: err, ServerName: cfg.ServerName, CertRequested: hi.certRequested, CertSent: hi.certSent, After: true}
	}
	return c, nil
}

// verdictSlack is added to the wait for a TLS 1.3 server's verdict on our
// client certificate, for a server that takes time to check it.
const verdictSlack = 20 * time.Millisecond

// Read reads the application's bytes: first, once, any greeting Probe took
// in, then the connection's. The server's close_notify, or its EOF at a
// record boundary, is io.EOF; writing may go on after it.
func (c *Conn) Read(b []byte) (int, error) {
	if len(c.greeting) > 0 {
		n := copy(b, c.greeting)
		c.greeting = c.greeting[n:]
		if len(c.greeting) == 0 {
			c.greeting = nil
		}
		return n, nil
	}
	return c.tc.Read(b)
}

// Write writes the application's bytes.
func (c *Conn) Write(b []byte) (int, error) { return c.tc.Write(b) }

// CloseWrite ends our direction after the bytes written so far: it sends
// close_notify, then shuts the socket's write side (a FIN), for servers that
// wait for the transport's EOF. Reading goes on.
func (c *Conn) CloseWrite() error {
	c.wroteClose.Store(true)
	if err := c.tc.CloseWrite(); err != nil {
		return err
	}
	if cw, ok := c.raw.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close sends close_notify (unless Abort came first) and closes the socket.
// crypto/tls gives the alert up to 5 s to be written: a pair that ends in
// error should Abort instead.
func (c *Conn) Close() error {
	if c.aborted.Load() {
		return net.ErrClosed
	}
	return c.tc.Close()
}

// Abort closes the socket with a reset (SO_LINGER 0 on TCP) and no
// close_notify, so the server sees a cut-off stream, never a clean end.
func (c *Conn) Abort() error {
	if !c.aborted.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if l, ok := c.raw.Conn.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return c.raw.Conn.Close()
}

// Probe tells whether an idle connection can be handed to a client, without
// blocking. Nothing queued on the socket means alive, without touching TLS
// state (one recvfrom MSG_PEEK|MSG_DONTWAIT). Queued bytes are processed
// through TLS without waiting for more: session tickets and key updates are
// taken in, application data (an implicit-TLS server's banner) is kept for
// Read, close_notify (io.EOF), an alert or the socket's EOF or reset is
// death (an error). A partial record stays buffered for later. Probe clears
// the connection's deadlines. See Buffered for a greeting.
func (c *Conn) Probe() error {
	if c.aborted.Load() {
		return net.ErrClosed
	}
	if c.wroteClose.Load() {
		return ErrWriteClosed
	}
	if c.dead != nil {
		return c.dead
	}
	if err := c.tc.SetDeadline(time.Time{}); err != nil {
		return err
	}
	queued, err := c.raw.queued()
	if err == nil && queued {
		err = c.drain()
	}
	c.dead = err
	c.probedAt = c.raw.sent.Load()
	return err
}

// WrittenSinceProbe is how many bytes went onto the socket since the last
// Probe: the TLS records carrying what Write was given, framing included.
// A forwarder whose pooled connection failed before it answered compares it
// with the socket's unacknowledged bytes (SIOCOUTQ, on NetConn) to tell a
// server that never received the client's bytes from one that did: the
// count of application bytes would understate what the kernel holds.
func (c *Conn) WrittenSinceProbe() int { return int(c.raw.sent.Load() - c.probedAt) }

// Buffered returns the number of greeting bytes Probe took in that Read has
// not handed out yet. A connection with some is not idle: it must not go back
// to the pool.
func (c *Conn) Buffered() int { return len(c.greeting) }

// drain reads whatever TLS can process without waiting for the socket,
// keeping application data as the greeting. It leaves no whole record in
// crypto/tls's buffer, which is what lets Probe trust an empty socket.
func (c *Conn) drain() error {
	c.raw.nonblock.Store(true)
	defer c.raw.nonblock.Store(false)
	var buf [4096]byte
	for len(c.greeting) < maxGreeting {
		n, err := c.tc.Read(buf[:])
		c.greeting = append(c.greeting, buf[:n]...)
		switch {
		case err == nil:
		case err == errWouldBlock:
			return nil
		default:
			return err
		}
	}
	return nil
}

// ConnectionState returns the TLS state (version, resumption, peer
// certificates).
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// NetConn returns the socket under TLS. Bytes must not be read from or
// written to it.
func (c *Conn) NetConn() net.Conn { return c.raw.Conn }

func (c *Conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.tc.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.tc.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }

// rawConn is the socket as crypto/tls sees it. While nonblock is set its
// Read never waits: an empty socket is errWouldBlock, a timeout net.Error,
// which crypto/tls returns without poisoning the connection (conn.go,
// readRecordOrCCS: only errors that are not Temporary are kept), and a
// partial record stays in its buffer. A Read with an expired deadline cannot
// do this: Go fails it before any syscall, leaving queued bytes queued.
type rawConn struct {
	net.Conn
	sc       syscall.RawConn // nil if the connection has no file descriptor
	nonblock atomic.Bool
	sent     atomic.Int64 // bytes written to the socket
	op       recvOp
	recvFn   func(fd uintptr) bool // r.recv
	one      [1]byte
}

func newRawConn(c net.Conn) *rawConn {
	rc := &rawConn{Conn: c}
	if s, ok := c.(syscall.Conn); ok {
		rc.sc, _ = s.SyscallConn()
	}
	rc.recvFn = rc.recv
	return rc
}

func (r *rawConn) Write(b []byte) (int, error) {
	n, err := r.Conn.Write(b)
	r.sent.Add(int64(n))
	return n, err
}

func (r *rawConn) Read(b []byte) (int, error) {
	if !r.nonblock.Load() {
		return r.Conn.Read(b)
	}
	if r.sc == nil || len(b) == 0 {
		return 0, errWouldBlock
	}
	r.op = recvOp{b: b}
	if err := r.sc.Read(r.recvFn); err != nil {
		return 0, err
	}
	n, err := r.op.n, r.op.err
	r.op = recvOp{}
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// queued tells whether bytes wait on the socket; its EOF or reset is an
// error. Without a file descriptor it cannot tell and says no.
func (r *rawConn) queued() (bool, error) {
	if r.sc == nil {
		return false, nil
	}
	r.op = recvOp{b: r.one[:], peek: true}
	if err := r.sc.Read(r.recvFn); err != nil {
		return false, err
	}
	n, err := r.op.n, r.op.err
	r.op = recvOp{}
	switch {
	case err == errWouldBlock:
		return false, nil
	case err != nil:
		return false, err
	case n == 0:
		return false, io.EOF
	}
	return true, nil
}

// recvOp is one non-blocking receive through RawConn.Read. It lives in
// rawConn and recv is bound once, so that a probe allocates nothing.
type recvOp struct {
	b    []byte
	peek bool
	n    int
	err  error
}

// recv makes the receive; returning true tells RawConn.Read never to wait.
func (r *rawConn) recv(fd uintptr) bool {
	r.op.n, r.op.err = recvNow(int(fd), r.op.b, r.op.peek)
	return true
}

// awaitQueued waits until bytes are queued on the socket (or it is closed
// or reset) or until deadline or ctx's, whichever comes first; running out of
// time is no error. It leaves a reset for the next read to report (a recv
// would take it, and the read after it would see an EOF).
func (r *rawConn) awaitQueued(ctx context.Context, deadline time.Time) error {
	if r.sc == nil {
		return nil
	}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := r.Conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	err := r.sc.Read(func(fd uintptr) bool { return readable(int(fd)) })
	if err := r.Conn.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	return err
}

// errWouldBlock is the non-blocking read's "nothing queued". It must reach
// crypto/tls unwrapped: it asserts net.Error on the error itself.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsup: nothing queued on the socket" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }
