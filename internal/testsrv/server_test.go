package testsrv

import (
	"io"
	"net"
	"testing"
	"time"
)

// The counts follow the connections: accepted, open (leave counts as
// gone), peak; Ended closes when the server has closed its end; a closed
// server reopens on its address.
func TestServerCounts(t *testing.T) {
	release := make(chan struct{})
	s := Serve(t, "tcp", "", func(c net.Conn, leave func()) {
		io.ReadFull(c, make([]byte, 1))
		leave()
		<-release
	})
	var cs []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	s.WaitAccepted(t, 3)
	s.WaitOpen(t, 3)
	cs[0].Write([]byte{1}) // its handler leaves, and goes on running
	s.WaitOpen(t, 2)
	if got, peak := s.Accepted(), s.Peak(); got != 3 || peak != 3 {
		t.Errorf("accepted, peak: got %d, %d; want 3, 3", got, peak)
	}
	cs[1].Write([]byte{1})
	cs[2].Write([]byte{1})
	s.WaitOpen(t, 0)
	ended := s.Ended(t, cs[1])
	select {
	case <-ended:
		t.Fatal("Ended closed while the handler runs")
	default:
	}
	close(release)
	select {
	case <-ended:
	case <-time.After(Timeout):
		t.Fatal("Ended not closed after the handler returned")
	}

	addr := s.Addr()
	s.Close()
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("dial after Close: connected; want refused")
	}
	s.Reopen(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after Reopen: %v", err)
	}
	defer c.Close()
	s.WaitAccepted(t, 4)
}

// Echo sends back what it reads and passes the client's EOF on, over TCP
// and a Unix socket.
func TestEcho(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s := Serve(t, network, "", Echo)
			c, err := net.Dial(network, s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(Timeout))
			io.WriteString(c, "hello")
			c.(interface{ CloseWrite() error }).CloseWrite()
			if b, err := io.ReadAll(c); string(b) != "hello" || err != nil {
				t.Errorf("echo: got %q, %v; want \"hello\", then EOF", b, err)
			}
		})
	}
}
