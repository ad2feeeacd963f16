//go:build !unix

package forward

import (
	"time"

	"github.com/warmport/warmport/proxyhdr"
)

// proxyHeader is the PROXY header for client; see ops_unix.go.
func proxyHeader(v proxyhdr.Version, client *sock) ([]byte, error) {
	return proxyhdr.HeaderFor(v, client.RemoteAddr(), client.LocalAddr())
}

// writeHeader writes b to up whole, within DefaultDialTimeout.
func writeHeader(up *sock, b []byte) error {
	up.SetWriteDeadline(time.Now().Add(DefaultDialTimeout))
	defer up.SetWriteDeadline(time.Time{})
	n, err := up.Write(b)
	if err == nil && n != len(b) {
		err = errShortHeader
	}
	return err
}
