//go:build !linux

package forward

import "net"

// UnixSockets says whether LOCAL and REMOTE may be unix:PATH in this build:
// here the forwarder's sockets are Go's TCP connections only.
const UnixSockets = false

func listenUnix(string) (*net.UnixListener, error) { return nil, errNoUnix }
