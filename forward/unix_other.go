//go:build !linux

package forward

import "net"

// UnixSockets says whether LOCAL and REMOTE may be unix:PATH in this build:
// the goroutine relay handles TCP connections only.
const UnixSockets = false

func listenUnix(string) (*net.UnixListener, error) { return nil, errNoUnix }
