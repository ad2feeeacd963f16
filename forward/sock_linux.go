package forward

import (
	"time"

	"github.com/warmport/warmport/forward/internal/rawsock"
)

// sock is a socket the forwarder owns outright (internal/rawsock): a
// nonblocking fd in an event loop's epoll set, never in Go's netpoller.
// sock_other.go says what it is elsewhere; both builds offer the helpers
// below under the same names.
type sock = rawsock.Socket

// resetClose closes c with a reset (SO_LINGER 0) instead of a FIN, for an
// abort; a closed socket stays closed.
func resetClose(c *sock) { c.ResetClose() }

// withFD runs fn on c's fd, unless c is closed.
func withFD(c *sock, fn func(fd int)) { c.Control(fn) }

// remoteAddr is c's peer as its record shows it.
func remoteAddr(c *sock) string { return c.Peer() }

// resetExchange writes req to c and reads the reply until check has it
// whole, by deadline, waiting in poll(2): c is out of the loop's epoll set.
func resetExchange(c *sock, req []byte, check func([]byte) (bool, error), deadline time.Time) error {
	return rawsock.Exchange(c, req, check, deadline)
}
