// White-box (package pool): it checks the Unix-socket half of the probe
// (unixOpen, through established) on a socketpair, which no Conn a pool
// holds can put in each state on demand.
package pool

import (
	"testing"

	"golang.org/x/sys/unix"
)

// unixOpen tells a Unix socket whose peer or own side shut down from an open
// one, with bytes queued or not.
func TestUnixOpen(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(own int, peer *int)
		want    error
	}{
		{"open", func(own int, peer *int) {}, nil},
		{"open, bytes queued", func(own int, peer *int) { unix.Write(*peer, []byte("hi")) }, nil},
		{"peer shut down writing", func(own int, peer *int) { unix.Shutdown(*peer, unix.SHUT_WR) }, errPeerShut},
		{"greeting, then the peer closed", func(own int, peer *int) {
			unix.Write(*peer, []byte("hi"))
			unix.Close(*peer)
			*peer = -1
		}, errPeerShut},
		{"own side shut down writing", func(own int, peer *int) { unix.Shutdown(own, unix.SHUT_WR) }, errOwnShut},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
			peer := fds[1]
			tt.prepare(fds[0], &peer)
			if peer >= 0 {
				defer unix.Close(peer)
			}
			if got := established(fds[0]); got != tt.want {
				t.Fatalf("established: got %v; want %v", got, tt.want)
			}
		})
	}
}
