package forward

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
)

// upstreamOn starts an upstream on network, "tcp" (127.0.0.1) or "unix" (a
// socket in a temporary directory), that runs handle on each connection,
// and returns its address as REMOTE writes it.
func upstreamOn(t *testing.T, network string, handle func(stream)) string {
	t.Helper()
	return startServer(t, network, handle).addr()
}

// forwarderOn runs a Forwarder listening on network ("tcp": 127.0.0.1:0;
// "unix": a socket in a temporary directory) until the test ends, and
// returns it with the address clients dial, as LOCAL writes it.
func forwarderOn(t *testing.T, network string, cfg Config) (*Forwarder, string) {
	t.Helper()
	if network == "tcp" {
		return startForwarder(t, cfg)
	}
	cfg.Local = "unix:" + filepath.Join(t.TempDir(), "fw.sock")
	f := serve(t, cfg)
	return f, f.Addr().String()
}

var unixCombos = []struct{ local, remote string }{{"unix", "unix"}, {"tcp", "unix"}, {"unix", "tcp"}}

// The relay suite's half-close and integrity test over Unix sockets: each
// client's bytes, its EOF, then the whole reply, byte for byte, with exact
// totals; records name a Unix peer unix:PATH.
func TestUnixRelayHalfCloseGetsWholeReply(t *testing.T) {
	for _, combo := range unixCombos {
		for _, warm := range []int{0, 2} {
			t.Run(fmt.Sprintf("%s-%s/warm=%d", combo.local, combo.remote, warm), func(t *testing.T) {
				remote := upstreamOn(t, combo.remote, replyAfterEOF[stream])
				f, addr := forwarderOn(t, combo.local, Config{Remote: remote, Pool: pool.Options{Warm: warm}})
				const clients = 10
				wantUp := roundTrips(t, addr, clients)
				sum := shutdown(t, f, time.Second)
				if got := sum.Totals; got.BytesUp != wantUp || got.Connections != clients {
					t.Errorf("totals = %+v; want %d connections, up %d", got, clients, wantUp)
				}
				for _, r := range sum.Connections {
					if r.ClosedBy != session.ClosedByClient || r.Error != "" {
						t.Errorf("record %d closed by %q (%s); want client", r.ID, r.ClosedBy, r.Error)
					}
					if combo.local == "unix" && r.Client != addr {
						t.Errorf("record %d: client %q; want %q", r.ID, r.Client, addr)
					}
					if combo.remote == "unix" && r.Upstream != remote {
						t.Errorf("record %d: upstream %q; want %q", r.ID, r.Upstream, remote)
					}
				}
			})
		}
	}
}

// The upstream ends first and still receives what the client sends after
// its EOF, over Unix sockets at either end.
func TestUnixRelayRemoteHalfClose(t *testing.T) {
	for _, combo := range unixCombos {
		t.Run(combo.local+"-"+combo.remote, func(t *testing.T) {
			got := make(chan string, 1)
			remote := upstreamOn(t, combo.remote, func(c stream) {
				c.Write([]byte("hello, then EOF\n"))
				c.CloseWrite()
				b, _ := io.ReadAll(c)
				got <- string(b)
			})
			_, addr := forwarderOn(t, combo.local, Config{Remote: remote, Pool: pool.Options{Warm: 0}})
			c, err := dialLocal(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testTimeout))
			if b, err := io.ReadAll(c); err != nil || string(b) != "hello, then EOF\n" {
				t.Fatalf("client read %q, %v; want the greeting, then EOF", b, err)
			}
			c.Write([]byte("after your EOF"))
			c.CloseWrite()
			select {
			case s := <-got:
				if s != "after your EOF" {
					t.Fatalf("upstream got %q after its EOF; want %q", s, "after your EOF")
				}
			case <-time.After(testTimeout):
				t.Fatal("the upstream never got the client's bytes and EOF")
			}
		})
	}
}

// LOCAL unix:PATH: a socket file of mode 0600 while listening, gone after
// Shutdown; a stale one replaced, a live one or another file left alone.
func TestUnixListenSocketFile(t *testing.T) {
	remote := upstreamOn(t, "tcp", func(c stream) { io.Copy(c, c) })
	t.Run("mode and removal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		f, err := New(Config{Local: "unix:" + path, Remote: remote})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			f.Shutdown(context.Background())
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket file: mode %v; want a socket of mode 0600", fi.Mode())
		}
		if got, want := f.Addr().String(), "unix:"+path; got != want {
			t.Errorf("Addr: %q; want %q", got, want)
		}
		f.Shutdown(context.Background())
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("after Shutdown: Lstat %v; want the socket file gone", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // the file stays, nobody listens: stale
		f := serve(t, Config{Local: "unix:" + path, Remote: remote})
		if got, err := echoOnce(f.Addr().String(), "through a replaced stale socket"); err != nil || got != "through a replaced stale socket" {
			t.Fatalf("echo: %q, %v", got, err)
		}
	})
	for _, tt := range []struct {
		name   string
		make   func(t *testing.T, path string)
		errHas string
	}{
		{"live", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, "is in use"},
		{"not a socket", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a socket"},
		{"directory missing", func(t *testing.T, path string) {}, "does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.sock")
			if tt.name == "directory missing" {
				path = filepath.Join(t.TempDir(), "nodir", "s.sock")
			}
			tt.make(t, path)
			before, _ := os.Lstat(path)
			f, err := New(Config{Local: "unix:" + path, Remote: remote})
			if err == nil {
				f.Shutdown(context.Background())
				t.Fatalf("New succeeded; want an error containing %q", tt.errHas)
			}
			if !strings.Contains(err.Error(), tt.errHas) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("New: %v; want one line containing %q", err, tt.errHas)
			}
			if after, _ := os.Lstat(path); before != nil && (after == nil || !os.SameFile(before, after)) {
				t.Fatalf("%s was removed or replaced; want it left alone", path)
			}
		})
	}
}

// A REMOTE unix:PATH that nobody listens on fails as Go's dialer words it.
func TestUnixDialError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	f := dialer(t, "unix:"+path, testTimeout)
	_, err := f.dialUpstream(context.Background())
	_, gos := net.Dial("unix", path)
	if err == nil || gos == nil || err.Error() != gos.Error() {
		t.Fatalf("dial: %v; want Go's %v", err, gos)
	}
}
