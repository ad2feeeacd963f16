package forward

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warmport/warmport/forward/internal/rawsock"
	"github.com/warmport/warmport/pool"
)

// resolveTo makes every name resolve to addrs for the rest of the test.
func resolveTo(t *testing.T, addrs ...string) {
	t.Helper()
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	old := lookupNetIP
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) { return ips, nil }
	t.Cleanup(func() { lookupNetIP = old })
}

// dialer is a Forwarder that dials remote, for its dialUpstream.
func dialer(t *testing.T, remote string, timeout time.Duration) *Forwarder {
	t.Helper()
	f, err := New(Config{Local: "127.0.0.1:0", Remote: remote, DialTimeout: timeout, Pool: pool.Options{Warm: 0}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Shutdown(context.Background()) })
	return f
}

// listenPair listens on hostA and hostB at one port, where each is
// listened on only if its listen flag is set; the other just had the port
// free. It returns the port and the listeners (nil where not listening).
func listenPair(t *testing.T, hostA string, listenA bool, hostB string, listenB bool) (string, net.Listener, net.Listener) {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", net.JoinHostPort(hostA, "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v", hostA, err)
		}
		_, port, _ := net.SplitHostPort(a.Addr().String())
		b, err := net.Listen("tcp", net.JoinHostPort(hostB, port))
		if err != nil { // taken on hostB: another port
			a.Close()
			continue
		}
		if !listenA {
			a.Close()
			a = nil
		} else {
			t.Cleanup(func() { a.Close() })
		}
		if !listenB {
			b.Close()
			b = nil
		} else {
			t.Cleanup(func() { b.Close() })
		}
		return port, a, b
	}
	t.Fatalf("no port free on both %s and %s", hostA, hostB)
	return "", nil, nil
}

func needIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("no IPv6 loopback (%v): the dual-stack tests need ::1 on lo", err)
	}
	ln.Close()
}

// A name's addresses are tried in turn: the first refuses, the second
// answers. When all refuse, the first's error is reported.
func TestDialFallsBackAcrossAddresses(t *testing.T) {
	port, _, ln := listenPair(t, "127.0.0.1", false, "127.0.0.2", true)
	resolveTo(t, "127.0.0.1", "127.0.0.2")
	f := dialer(t, "db.test:"+port, testTimeout)
	s, err := f.dialUpstream(context.Background())
	if err != nil {
		t.Fatalf("dial: %v; want the second address", err)
	}
	defer s.Close()
	if got, want := remoteAddr(s), ln.Addr().String(); got != want {
		t.Fatalf("connected to %s; want %s", got, want)
	}

	ln.Close()
	_, err = f.dialUpstream(context.Background())
	if want := "dial tcp 127.0.0.1:" + port + ": connect: connection refused"; err == nil || err.Error() != want {
		t.Fatalf("dial with every address refusing: %v; want %q", err, want)
	}
}

// IPv6 and IPv4 race as RFC 8305 says: the first address's family first, the
// other one when it fails or after rawsock.FallbackDelay; the first to connect wins.
func TestDialRacesFamilies(t *testing.T) {
	needIPv6(t)
	for _, tt := range []struct {
		name           string
		resolved       []string
		listen6        bool
		blackhole6     bool
		listen4        bool
		wantHost       string // "" for an error
		wantErrAddress string
	}{
		{name: "IPv6 answers", resolved: []string{"::1", "127.0.0.1"}, listen6: true, listen4: true, wantHost: "::1"},
		{name: "IPv6 refuses", resolved: []string{"::1", "127.0.0.1"}, listen4: true, wantHost: "127.0.0.1"},
		{name: "IPv6 hangs", resolved: []string{"::1", "127.0.0.1"}, listen6: true, blackhole6: true, listen4: true, wantHost: "127.0.0.1"},
		{name: "IPv4 first, refuses", resolved: []string{"127.0.0.1", "::1"}, listen6: true, wantHost: "::1"},
		{name: "both refuse", resolved: []string{"::1", "127.0.0.1"}, wantErrAddress: "[::1]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port, ln6, _ := listenPair(t, "::1", tt.listen6, "127.0.0.1", tt.listen4)
			if tt.blackhole6 {
				blackhole(t, ln6)
			}
			resolveTo(t, tt.resolved...)
			f := dialer(t, "db.test:"+port, testTimeout)
			start := time.Now()
			s, err := f.dialUpstream(context.Background())
			if tt.wantHost == "" {
				want := "dial tcp " + tt.wantErrAddress + ":" + port + ": connect: connection refused"
				if err == nil || err.Error() != want {
					t.Fatalf("dial: %v; want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v; want a connection to %s", err, tt.wantHost)
			}
			defer s.Close()
			if got, want := remoteAddr(s), net.JoinHostPort(tt.wantHost, port); got != want {
				t.Fatalf("connected to %s; want %s", got, want)
			}
			// IPv4 starts when IPv6's head start is up, not when its dial
			// gives up: tried in turn, IPv6 would have had 2 s at least.
			if waited := time.Since(start); tt.blackhole6 && (waited < rawsock.FallbackDelay || waited >= 2*time.Second) {
				t.Fatalf("IPv4 connected after %v; want it after IPv6's %v head start, and no later than a serial dial's 2 s", waited, rawsock.FallbackDelay)
			}
		})
	}
}

// The dialer's errors read as net.Dialer's for the same dial, and mean the
// same to errors.Is; a timeout also Is os.ErrDeadlineExceeded.
func TestDialErrorsAsGo(t *testing.T) {
	hole := blackholed(t)
	refused := "127.0.0.1:" + freePort(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name    string
		remote  string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		is      []error
	}{
		{name: "refused", remote: refused, is: []error{unix.ECONNREFUSED}},
		{name: "canceled before", remote: refused, is: []error{context.Canceled},
			ctx: func() (context.Context, context.CancelFunc) { return canceled, func() {} }},
		{name: "canceled while waiting", remote: hole.Addr().String(), is: []error{context.Canceled},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			}},
		{name: "timed out", remote: hole.Addr().String(), timeout: 100 * time.Millisecond,
			is: []error{context.DeadlineExceeded, os.ErrDeadlineExceeded}},
		{name: "context's deadline", remote: hole.Addr().String(), is: []error{context.DeadlineExceeded, os.ErrDeadlineExceeded},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			newCtx := tt.ctx
			if newCtx == nil {
				newCtx = func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }
			}
			timeout := cmp.Or(tt.timeout, testTimeout)
			ctx, cancel := newCtx()
			defer cancel()
			_, ours := dialer(t, tt.remote, timeout).dialUpstream(ctx)
			ctx, cancel = newCtx()
			defer cancel()
			_, gos := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", tt.remote)
			if ours == nil || gos == nil || ours.Error() != gos.Error() {
				t.Fatalf("got %v; want Go's %v", ours, gos)
			}
			for _, target := range tt.is {
				if !errors.Is(ours, target) {
					t.Errorf("errors.Is(%v, %v) = false; want true", ours, target)
				}
			}
			var ne, gne net.Error
			if !errors.As(ours, &ne) || !errors.As(gos, &gne) || ne.Timeout() != gne.Timeout() {
				t.Errorf("%v: not a net.Error with Timeout() as Go's", ours)
			}
		})
	}
}

// A dial whose handshake is slow waits in Go's netpoller: 50 of them at once
// hold no thread each (poll(2) would hold 50).
func TestDialInProgressHoldsNoThread(t *testing.T) {
	hole := blackholed(t)
	f := dialer(t, hole.Addr().String(), testTimeout)
	_, port, _ := net.SplitHostPort(hole.Addr().String())
	before := threads(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const dials = 50
	errs := make(chan error, dials)
	var wg sync.WaitGroup
	for range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := f.dialUpstream(ctx)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	eventually(t, "50 dials in SYN_SENT", func() bool { return synSent(t, port) >= dials })
	during := threads(t)
	cancel()
	wg.Wait()
	close(errs)
	if during-before >= 10 {
		t.Errorf("threads: %d before, %d with %d dials waiting; want about as many", before, during, dials)
	}
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a canceled dial returned %v; want context.Canceled", err)
		}
	}
}

// threads is this process's number of threads.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}
