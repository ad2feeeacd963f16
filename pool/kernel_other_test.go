//go:build !linux

package pool_test

import (
	"net"
	"testing"
)

type sockState struct {
	dead   bool
	queued int
}

// kernelState needs Linux's TCP_INFO and SIOCINQ.
func kernelState(t *testing.T, _ *net.TCPConn) (sockState, bool) {
	t.Helper()
	t.Skip("reading a socket's state needs Linux's TCP_INFO and SIOCINQ")
	return sockState{}, false
}
