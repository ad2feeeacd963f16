package forward

import (
	"errors"
	"strings"
)

// unixPath returns PATH of an address written unix:PATH.
func unixPath(addr string) (string, bool) { return strings.CutPrefix(addr, "unix:") }

// unixAddr is a Unix socket's address written as LOCAL and REMOTE write it,
// "unix:PATH" (a *net.UnixAddr prints the bare path, which reads as a file).
type unixAddr string

func (a unixAddr) Network() string { return "unix" }
func (a unixAddr) String() string  { return string(a) }

var errNoUnix = errors.New("unix:PATH: Unix sockets are not supported on this platform yet")
