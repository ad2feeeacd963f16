//go:build unix

package allowlist

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// miniForwarder accepts the way warmport's Linux path does (accept4 on
// the listener's fd), calls Admit before anything else, and for an
// admitted client dials the upstream and answers "ok".
type miniForwarder struct {
	file     *os.File // the listener's duplicate: a listener's RawConn does not Read
	allow    *List
	report   *Reporter
	upstream string
	denied   atomic.Int64
	wg       sync.WaitGroup
}

func (f *miniForwarder) serve(t *testing.T) {
	defer f.wg.Done()
	rc, err := f.file.SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	for {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			return aerr != unix.EAGAIN
		})
		if err != nil || aerr != nil {
			return // the listener closed
		}
		in4 := sa.(*unix.SockaddrInet4)
		client := netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
		if !f.allow.Admit(nfd, client, f.report) {
			f.denied.Add(1)
			continue
		}
		up, err := net.Dial("tcp", f.upstream)
		if err == nil {
			if _, err := up.Read(make([]byte, 1)); err == nil {
				unix.Write(nfd, []byte("ok"))
			}
			up.Close()
		}
		unix.Close(nfd)
	}
}

// A denied client never reaches the upstream, and learns at once (a
// reset); an allowed one is served.
func TestAdmitRawAccept(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	var upAccepts atomic.Int64
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			upAccepts.Add(1)
			c.Write([]byte("u")) // after the count: a client that saw "u" was counted
			c.Close()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	allow, err := Parse([]string{"127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	var lines atomic.Int64
	file, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	f := &miniForwarder{file: file, allow: allow, upstream: up.Addr().String(),
		report: NewReporter(func(string, ...any) { lines.Add(1) }, 0)}
	f.wg.Add(1)
	go f.serve(t)
	defer func() { ln.Close(); f.file.Close(); f.wg.Wait() }()

	// The loopback network answers from any 127/8 address: clients from
	// 127.0.0.2 are allowed, from 127.0.0.3 not.
	connect := func(from string) (string, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	const allowed, denied = 5, 20
	for i := 0; i < denied; i++ {
		got, err := connect("127.0.0.3")
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("denied client %d: read %q, %v; want %v", i, got, err, syscall.ECONNRESET)
		}
	}
	for i := 0; i < allowed; i++ {
		if got, err := connect("127.0.0.2"); got != "ok" || err != nil {
			t.Fatalf("allowed client %d: read %q, %v; want %q", i, got, err, "ok")
		}
	}
	if got := upAccepts.Load(); got != allowed {
		t.Errorf("upstream accepted %d; want %d (the allowed clients only)", got, allowed)
	}
	if got := f.denied.Load(); got != denied {
		t.Errorf("denied %d; want %d", got, denied)
	}
	if got := lines.Load(); got < 1 || got > denied {
		t.Errorf("%d lines for %d denied clients; want between 1 and %d", got, denied, denied)
	}
}

func TestAdmitConn(t *testing.T) {
	allow, err := Parse([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	r := NewReporter(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }, 0)
	tests := []struct {
		name    string
		list    *List
		network string
		want    bool
	}{
		{"no list admits", nil, "tcp", true},
		{"127.0.0.1 not in 10/8", allow, "tcp", false},
		{"a Unix client cannot be vouched for", allow, "unix", false},
		{"no list admits a Unix client", nil, "unix", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if tt.network == "unix" {
				addr = t.TempDir() + "/s"
			}
			c, s := pair(t, tt.network, addr)
			defer s.Close()
			if ok := tt.list.AdmitConn(s, r); ok != tt.want {
				t.Fatalf("AdmitConn = %v; want %v", ok, tt.want)
			}
			if tt.want {
				s.Write([]byte("x")) // an admitted client's connection is left open
			}
			err := readErr(t, c)
			if tt.want && err != nil {
				t.Errorf("admitted client read: %v; want the server's byte", err)
			}
			if !tt.want && err == nil {
				t.Errorf("denied client read: nil error; want it closed")
			}
		})
	}
	if len(got) != 2 {
		t.Errorf("lines %q; want one per denied client", got)
	}
}
