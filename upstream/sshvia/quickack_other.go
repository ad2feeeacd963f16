//go:build !linux

package sshvia

import "net"

// quickAck: only Linux offers TCP_QUICKACK.
func quickAck(net.Conn) func() { return nil }
