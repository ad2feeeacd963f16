package forward

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warmport/warmport/allowlist"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/proxyhdr"
)

// A warm upstream that went stale after the probe is replaced and the
// client's first bytes replayed: the fresh upstream gets the client's
// PROXY header first, and the request once; the stale one's header is
// nobody's request, and bytes_up counts the client's bytes only.
func TestProxyHeaderOnReplay(t *testing.T) {
	got := make(chan string, 4)
	handle, held := staleAfterBorrow(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		hdr, _ := r.ReadString('\n')
		req, _ := r.ReadString('\n')
		got <- hdr + req
		c.Write([]byte(req))
	})
	up := startUpstream(t, handle)
	f, addr := startForwarder(t, Config{Remote: up.addr(), ProxyProtocol: proxyhdr.V1, Pool: pool.Options{Warm: 2}})
	eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 2 })
	held()
	c := dial(t, addr)
	msg := "first request, replayed once\n"
	c.Write([]byte(msg))
	echoed := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echoed); err != nil || string(echoed) != msg {
		t.Fatalf("got %q, %v; want %q", echoed, err, msg)
	}
	cl, fw := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	c.Close()
	sum := shutdown(t, f, time.Second)
	want := fmt.Sprintf("PROXY TCP4 %s %s %d %d\r\n%s", cl.IP, fw.IP, cl.Port, fw.Port, msg)
	select {
	case s := <-got:
		if s != want {
			t.Errorf("fresh upstream got %q; want %q", s, want)
		}
	default:
		t.Fatal("no fresh upstream got the request")
	}
	if r := sum.Connections; len(r) != 1 || r[0].BytesUp != int64(len(msg)) || r[0].Source != "cold" {
		t.Errorf("records = %+v; want one redialed (cold) connection with bytes_up %d", r, len(msg))
	}
}

// The forwarder's own admission: a denied client is reset before a pair or
// a borrow exists; the report names it as records do (IPv4, unmapped).
func TestAdmitDenied(t *testing.T) {
	allow, err := allowlist.Parse([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	up := startUpstream(t, echo)
	f, addr := startForwarder(t, Config{Remote: up.addr(), Allow: allow, Logf: logf, Pool: pool.Options{Warm: 1}})
	eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 1 })
	// The reset may come before connect(2) returns: the client then has
	// no address to compare with the report's.
	var client string
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.TCPAddrFromAddrPort(mustAddrPort(t, addr)))
	if err == nil {
		client = c.LocalAddr().String()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("denied client: got %v; want a reset", err)
	}
	sum := shutdown(t, f, time.Second)
	if sum.Totals.Denied != 1 || sum.Totals.Connections != 0 || len(sum.Connections) != 0 || sum.Pool.Hits+sum.Pool.Misses != 0 {
		t.Errorf("totals %+v, %d records, pool %+v; want 1 denied and nothing else", sum.Totals, len(sum.Connections), sum.Pool)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "warmport: denied 127.0.0.1:") || client != "" && !strings.Contains(lines[0], client+" ") {
		want := "warmport: denied " + client + " (not in --allow)"
		t.Errorf("lines %q; want [%q]", lines, want)
	}
}

func mustAddrPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// A Stream upstream (TLS, SSH) with failover candidates: DialStream is
// asked for each candidate in order, the dead first one is skipped, the
// record names the one that served, and the PROXY header goes inside the
// stream before the client's bytes.
func TestStreamCandidatesAndHeader(t *testing.T) {
	dead := startUpstream(t, echo)
	deadAddr := dead.addr()
	dead.close()
	up := startUpstream(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 28) // v2, TCP4
		if _, err := io.ReadFull(c, hdr); err != nil || string(hdr[:12]) != "\r\n\r\n\x00\r\nQUIT\n" {
			return // not the header: the client sees EOF, never its echo
		}
		echo(c)
	})
	var mu sync.Mutex
	var asked []string
	var probes atomic.Int64
	dialStream := streamDialer(&probes)
	var lines []string
	f, addr := startForwarder(t, Config{Remote: deadAddr + "," + up.addr(), ProxyProtocol: proxyhdr.V2, Pool: pool.Options{Warm: 1},
		Logf: func(format string, args ...any) {
			mu.Lock()
			lines = append(lines, fmt.Sprintf(format, args...))
			mu.Unlock()
		},
		DialStream: func(ctx context.Context, remote string) (Stream, error) {
			mu.Lock()
			asked = append(asked, remote)
			mu.Unlock()
			return dialStream(ctx, remote)
		}})
	eventually(t, "pool filled", func() bool { return f.pool.Stats().Idle == 1 })
	c := dial(t, addr)
	msg := "through the second candidate\n"
	c.Write([]byte(msg))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("echo: got %q, %v; want %q", got, err, msg)
	}
	c.Close()
	sum := shutdown(t, f, time.Second)
	if r := sum.Connections; len(r) != 1 || r[0].Upstream != up.addr() || r[0].BytesUp != int64(len(msg)) {
		t.Errorf("records %+v; want one served by %s with bytes_up %d", r, up.addr(), len(msg))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 2 || asked[0] != deadAddr || asked[1] != up.addr() {
		t.Errorf("DialStream asked for %v; want %s, then %s", asked, deadAddr, up.addr())
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "warmport: upstream "+deadAddr+" is down") {
		t.Errorf("lines %q; want one saying %s is down", lines, deadAddr)
	}
}
