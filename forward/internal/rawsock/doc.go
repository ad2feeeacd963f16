// Package rawsock is the forwarder's own sockets on Linux: a nonblocking fd
// that Go's netpoller never sees (Socket), the raw syscalls the relay makes on
// it, and a dialer (RFC 8305, Go's errors) that returns one. It knows nothing
// of pairs, pollers or the Forwarder. Elsewhere only UnixAddr builds: the
// forwarder uses Go's own connections there.
package rawsock

// UnixAddr is a Unix socket's address written as LOCAL and REMOTE write it,
// "unix:PATH" (a *net.UnixAddr prints the bare path, which reads as a file).
type UnixAddr string

func (a UnixAddr) Network() string { return "unix" }
func (a UnixAddr) String() string  { return string(a) }
