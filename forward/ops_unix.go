//go:build unix

package forward

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/proxyhdr"
)

// proxyHeader is the PROXY header for client: its address and the one it
// reached (getsockname: on a wildcard bind not the listener's). A client
// of a Unix socket has neither: an unknown origin (v1 UNKNOWN, v2 LOCAL).
func proxyHeader(v proxyhdr.Version, client *sock) ([]byte, error) {
	ta, ok := client.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return proxyhdr.HeaderFor(v, nil, nil)
	}
	var err error
	var b []byte
	withFD(client, func(fd int) {
		local, lerr := proxyhdr.LocalAddr(fd)
		if lerr != nil {
			err = lerr
			return
		}
		b, err = proxyhdr.Header(v, ta.AddrPort(), local)
	})
	if b == nil && err == nil {
		err = net.ErrClosed
	}
	return b, err
}

// writeHeader writes b to up in one write(2): the header is at most 108
// bytes (v1) or 52 (v2 TCP6) and up's send buffer holds nothing yet.
func writeHeader(up *sock, b []byte) error {
	n, err := -1, net.ErrClosed
	withFD(up, func(fd int) {
		for {
			n, err = unix.Write(fd, b)
			if err != unix.EINTR {
				return
			}
		}
	})
	if err == nil && n != len(b) {
		err = errShortHeader
	}
	return err
}
