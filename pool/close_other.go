//go:build !unix || aix

package pool

import "syscall"

// letGo closes an idle connection the pool lets go unused. Here there is no
// raw non-blocking read to empty its receive queue and wait for the server's
// FIN, so a server that greeted it may see a reset.
func (p *Pool[C]) letGo(c C) { c.Close() }

// drainRaw: nothing lingers here (see letGo).
func drainRaw(syscall.RawConn) bool { return true }
