package rawsock

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The forwarder's own dialer does what net.Dialer does (every resolved
// address, IPv6 and IPv4 raced as RFC 8305 says, Go's error words and
// errors.Is meanings) and returns a Socket an event loop can own: an fd that
// was never in Go's netpoller, or was taken out of it. On loopback a
// connect is over when the second connect returns, so a dial costs four
// syscalls; a handshake still on waits in Go's netpoller, which holds no
// thread (see waitConnect).

// FallbackDelay is how long the first address family has before the other
// one starts racing it: net.Dialer's default, RFC 8305's recommendation.
const FallbackDelay = 300 * time.Millisecond

// canceledError is Go's dialer's error for a dial its context canceled:
// its words, and errors.Is(err, context.Canceled).
type canceledError struct{}

func (canceledError) Error() string        { return "operation was canceled" }
func (canceledError) Is(target error) bool { return target == context.Canceled }

// timeoutError is a dial that ran out of time: "i/o timeout" as Go words it,
// a net.Error whose Timeout is true, and errors.Is both
// context.DeadlineExceeded (as Go's dialer's) and os.ErrDeadlineExceeded (as
// a deadline's on a connection).
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded || target == os.ErrDeadlineExceeded
}

// ctxErr is a done ctx's error as Go's dialer words it.
func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return canceledError{}
	}
	return timeoutError{}
}

// DialTCP connects to one of addrs, a name's resolved addresses in order,
// by deadline: those of the first address's family first, the others racing
// them FallbackDelay later or once the first have all failed (RFC 8305).
// keepalive turns on TCP keepalive (SetSockopts).
func DialTCP(ctx context.Context, addrs []netip.AddrPort, deadline time.Time, keepalive bool) (*Socket, error) {
	primaries, fallbacks := partition(addrs)
	if len(fallbacks) == 0 {
		return dialSerial(ctx, primaries, deadline, keepalive)
	}
	return dialParallel(ctx, primaries, fallbacks, deadline, keepalive)
}

// partition splits addrs as Go's dialer does: the primaries are those of the
// first address's family, in order; the fallbacks, the others.
func partition(addrs []netip.AddrPort) (primaries, fallbacks []netip.AddrPort) {
	if len(addrs) == 0 {
		return addrs, nil
	}
	is4 := addrs[0].Addr().Is4()
	for i, a := range addrs {
		if a.Addr().Is4() != is4 {
			if fallbacks == nil {
				primaries = append(primaries, addrs[:i]...)
			}
			fallbacks = append(fallbacks, a)
		} else if fallbacks != nil {
			primaries = append(primaries, a)
		}
	}
	if fallbacks == nil {
		return addrs, nil
	}
	return primaries, fallbacks
}

// dialParallel races the primaries against the fallbacks, which start
// FallbackDelay later, or at once when the primaries have all failed. The
// first connection wins; if both fail, the primaries' error is returned.
func dialParallel(ctx context.Context, primaries, fallbacks []netip.AddrPort, deadline time.Time, keepalive bool) (*Socket, error) {
	type result struct {
		s       *Socket
		err     error
		primary bool
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, 2) // buffered: a loser never blocks
	race := func(addrs []netip.AddrPort, primary bool) {
		s, err := dialSerial(ctx, addrs, deadline, keepalive)
		results <- result{s, err, primary}
	}
	go race(primaries, true)
	fallback := time.NewTimer(FallbackDelay)
	defer fallback.Stop()
	var primaryErr, fallbackErr error
	started, done := 1, 0
	for {
		select {
		case <-fallback.C:
			if started == 1 {
				started++
				go race(fallbacks, false)
			}
		case r := <-results:
			done++
			if r.err == nil {
				cancel()
				for ; done < started; done++ { // the loser's connection, if any
					if l := <-results; l.err == nil {
						l.s.Close()
					}
				}
				return r.s, nil
			}
			if r.primary {
				primaryErr = r.err
			} else {
				fallbackErr = r.err
			}
			if started == 1 { // the primaries failed: no reason to wait
				started++
				go race(fallbacks, false)
			} else if done == started {
				if primaryErr != nil {
					return nil, primaryErr
				}
				return nil, fallbackErr
			}
		}
	}
}

// dialSerial tries addrs in turn, each with its share of the time left
// (at least 2 s, as Go's dialer gives), and returns the first connection,
// or the first error.
func dialSerial(ctx context.Context, addrs []netip.AddrPort, deadline time.Time, keepalive bool) (*Socket, error) {
	var first error
	for i, a := range addrs {
		if ctx.Err() != nil {
			return nil, opError(a, "", ctxErr(ctx))
		}
		s, err := dialAddr(ctx, a, partialDeadline(time.Now(), deadline, len(addrs)-i), keepalive)
		if err == nil {
			return s, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("missing address")}
	}
	return nil, first
}

// partialDeadline is the deadline of one of n addresses left to try: an
// equal share of the time left, but at least 2 s when there is that much.
func partialDeadline(now, deadline time.Time, n int) time.Time {
	left := deadline.Sub(now)
	share := left / time.Duration(n)
	if share < 2*time.Second {
		share = min(2*time.Second, left)
	}
	return now.Add(share)
}

func opError(a netip.AddrPort, call string, err error) error {
	if call != "" {
		err = os.NewSyscallError(call, err)
	}
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(a), Err: err}
}

// dialAddr connects one nonblocking socket to a. On loopback the handshake
// is usually over when the second connect returns; otherwise it waits in
// Go's netpoller (waitConnect).
func dialAddr(ctx context.Context, a netip.AddrPort, deadline time.Time, keepalive bool) (*Socket, error) {
	family := unix.AF_INET
	if !a.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := socket(family)
	if err != nil {
		return nil, opError(a, "socket", err)
	}
	SetSockopts(fd, keepalive)
	switch err := connect(fd, a); err {
	case nil:
		return New(fd, a, ""), nil
	case unix.EINPROGRESS, unix.EINTR:
	default:
		Close(fd)
		return nil, opError(a, "connect", err)
	}
	// A second connect says whether the handshake is over in one syscall (a
	// poll and SO_ERROR take two): 0 once established, EALREADY while it is
	// on, the failure (ECONNREFUSED) otherwise.
	switch err := connect(fd, a); err {
	case nil, unix.EISCONN:
		return New(fd, a, ""), nil
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
	default:
		Close(fd)
		return nil, opError(a, "connect", err)
	}
	fd, err = waitConnect(ctx, fd, a, deadline)
	if err != nil {
		return nil, err
	}
	return New(fd, a, ""), nil
}

// waitConnect waits for fd's handshake in Go's netpoller, as net.Dialer
// does, so a dial in progress holds no thread, and returns the connected
// socket as a new fd that the netpoller does not know: os.File offers no
// way to take an fd back, so it is duplicated and the File closed (which
// takes fd out of the netpoller before closing it). Only a dial that was not
// over at once pays for this: four syscalls and a few allocations.
func waitConnect(ctx context.Context, fd int, a netip.AddrPort, deadline time.Time) (int, error) {
	file := os.NewFile(uintptr(fd), "") // nonblocking: into the netpoller
	defer file.Close()
	rc, err := file.SyscallConn()
	if err != nil {
		return -1, opError(a, "", err)
	}
	file.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { file.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var connErr error
	err = rc.Write(func(fd uintptr) bool {
		switch connErr = connect(int(fd), a); connErr {
		case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
			return false
		case unix.EISCONN:
			connErr = nil
		}
		return true
	})
	switch {
	case ctx.Err() != nil:
		return -1, opError(a, "", ctxErr(ctx))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return -1, opError(a, "", timeoutError{})
	case err != nil:
		return -1, opError(a, "", err)
	case connErr != nil:
		return -1, opError(a, "connect", connErr)
	}
	nfd := -1
	err = rc.Control(func(fd uintptr) { nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return -1, opError(a, "fcntl", err)
	}
	return nfd, nil
}

// DialUnix connects to the Unix stream socket at path, which records name
// as name. A Unix connect never
// waits: it is done, or refused, or EAGAIN when the listener's backlog is
// full, which Go's dialer reports as an error too.
func DialUnix(ctx context.Context, path, name string) (*Socket, error) {
	opErr := func(call string, err error) error {
		return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"},
			Err: os.NewSyscallError(call, err)}
	}
	if ctx.Err() != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: ctxErr(ctx)}
	}
	fd, err := socket(unix.AF_UNIX)
	if err != nil {
		return nil, opErr("socket", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		Close(fd)
		return nil, opErr("connect", err)
	}
	return New(fd, netip.AddrPort{}, name), nil
}
