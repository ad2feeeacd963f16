//go:build unix

package allowlist

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a fresh connection on network at addr.
func pair(t *testing.T, network, addr string) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// readErr waits (bounded) for what the client's read says.
func readErr(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err
}

func TestRejectSendsReset(t *testing.T) {
	tests := []struct {
		name   string
		reject func(t *testing.T, s *net.TCPConn) error
		want   error
	}{
		{"net.Conn", func(t *testing.T, s *net.TCPConn) error { return Reject(s) }, syscall.ECONNRESET},
		{"raw fd", func(t *testing.T, s *net.TCPConn) error {
			f, err := s.File() // a second fd on the socket: closing s alone sends nothing
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			fd, err := syscall.Dup(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			return RejectFD(fd)
		}, syscall.ECONNRESET},
		// The control: a plain close is a clean EOF, which is what the reset
		// must not look like.
		{"plain close", func(t *testing.T, s *net.TCPConn) error { return s.Close() }, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pair(t, "tcp", "127.0.0.1:0")
			if err := tt.reject(t, s.(*net.TCPConn)); err != nil {
				t.Fatalf("reject: %v", err)
			}
			if got := readErr(t, c); !errors.Is(got, tt.want) {
				t.Errorf("client read: got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestRejectUnix(t *testing.T) {
	a, b := net.Pipe() // not a socket: Reject must still close it
	if err := Reject(b); err != nil {
		t.Fatalf("Reject(pipe): %v", err)
	}
	if got := readErr(t, a); !errors.Is(got, io.EOF) {
		t.Errorf("pipe read: got %v; want %v", got, io.EOF)
	}

	c, s := pair(t, "unix", t.TempDir()+"/s")
	if err := Reject(s); err != nil {
		t.Fatalf("Reject(unix): %v", err)
	}
	if got := readErr(t, c); !errors.Is(got, io.EOF) {
		t.Errorf("unix read: got %v; want %v", got, io.EOF)
	}
}
