package forward

import (
	"errors"
	"strings"
)

// unixPath returns PATH of an address written unix:PATH.
func unixPath(addr string) (string, bool) { return strings.CutPrefix(addr, "unix:") }

var errNoUnix = errors.New("unix:PATH: Unix sockets are not supported on this platform yet")
