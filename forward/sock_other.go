//go:build !linux

package forward

import (
	"context"
	"net"
	"time"
)

// sock is a connection as the forwarder holds it here: Go's own.
type sock = net.TCPConn

// native: there is no event loop here; the copier relays every pair.
type native struct{}

func (f *Forwarder) startNative() error { return nil }

func (f *Forwarder) stopNative() {}

// engineFor: the copier, the one engine here.
func (f *Forwarder) engineFor(p *pair) engine {
	return new(copyPair)
}

// streamOf: Go's connection is a stream already.
func streamOf(s *sock) (stream, error) { return s, nil }

// dropStream clears the deadline a recycle's interrupt set; the connection
// itself is its pair's to close or recycle.
func dropStream(st stream) { st.SetDeadline(time.Time{}) }

func (f *Forwarder) accept() (*sock, error) { return f.ln.AcceptTCP() }

// closeAccept: closing f.ln is all it takes here.
func (f *Forwarder) closeAccept() {}

// withFD runs fn on c's fd, unless c is closed.
func withFD(c *sock, fn func(fd int)) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}

// resetExchange writes req to c and reads the reply until check has it
// whole, by deadline.
func resetExchange(c *sock, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(req); err != nil {
		return err
	}
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		reply = append(reply, buf[:n]...)
		if done, cerr := check(reply); done || cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
	}
}

// resetClose closes c with a reset (SO_LINGER 0) instead of a FIN, for an
// abort.
func resetClose(c *sock) {
	c.SetLinger(0)
	c.Close()
}

// remoteAddr is c's peer as its record shows it.
func remoteAddr(c *sock) string { return c.RemoteAddr().String() }

func (f *Forwarder) dialRemote(ctx context.Context, remote string) (*sock, error) {
	growStack() // in a client's goroutine or the pool's background dialer
	d := net.Dialer{Timeout: f.dialTimeout(), KeepAlive: keepAlive(remote)}
	c, err := d.DialContext(ctx, "tcp", remote)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// loopPair: no event loop here.
type loopPair struct{}
