package forward

import (
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/forward/internal/rawsock"
)

// accept takes the next client from the listener, waiting in Go's netpoller
// while there is none. It accepts on a duplicate of the listener's fd: Go
// offers no raw reads on a listener itself.
func (f *Forwarder) accept() (*sock, error) {
	f.acceptMu.Lock()
	defer f.acceptMu.Unlock()
	err := f.lnRC.Read(f.acceptFn)
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: f.Addr().Network(), Addr: f.Addr(), Err: err}
	}
	if f.acceptErr != nil {
		return nil, &net.OpError{Op: "accept", Net: f.Addr().Network(), Addr: f.Addr(), Err: os.NewSyscallError("accept4", f.acceptErr)}
	}
	// Options: see openAccept. A Unix client has no address worth a
	// record: it is named by the listener's unix:PATH.
	return rawsock.New(f.accepted, f.acceptAddr, f.localUnix), nil
}

// acceptOnce accepts on fd; false (wait) while no client is there.
func (f *Forwarder) acceptOnce(fd uintptr) bool {
	for {
		f.accepted, f.acceptAddr, f.acceptErr = rawsock.Accept4(int(fd))
		if f.acceptErr != unix.EINTR {
			return f.acceptErr != unix.EAGAIN
		}
	}
}

// openAccept opens the duplicate of the listener that accept reads, and
// sets the clients' socket options on the listener once: an accepted socket
// inherits TCP_NODELAY and the keepalive settings from it, which saves a
// setsockopt per client (five off loopback). New calls it right after
// listening, before the ready line: a client queued in between would miss
// them. A Unix socket has no such options.
func (f *Forwarder) openAccept() error {
	file, err := f.listener.(interface{ File() (*os.File, error) }).File() // nonblocking, so in Go's netpoller
	if err != nil {
		return err
	}
	rc, err := file.SyscallConn()
	if err == nil && f.localUnix == "" {
		err = rc.Control(func(fd uintptr) { rawsock.SetSockopts(int(fd), keepAlive(f.cfg.Local) >= 0) })
	}
	if err != nil {
		file.Close()
		return err
	}
	f.lnFile, f.lnRC, f.acceptFn = file, rc, f.acceptOnce
	return nil
}

// closeAccept closes the duplicate too: the socket listens until both are
// closed.
func (f *Forwarder) closeAccept() {
	if f.lnFile != nil {
		f.lnFile.Close()
	}
}
