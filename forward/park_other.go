//go:build !linux

package forward

import (
	"errors"
	"net"
)

// parker is Linux-only (epoll); elsewhere directions never park: recv
// blocks in Read instead.
type parker struct{}

func (pk *parker) start()                            {}
func (pk *parker) park(d *dir, c *net.TCPConn) error { return errors.ErrUnsupported }
func (pk *parker) forget(key uint64)                 {}
func (pk *parker) close()                            {}
