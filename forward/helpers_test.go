package forward

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
	"github.com/warmport/warmport/session"
)

// testTimeout bounds every wait in this package's tests.
const testTimeout = 20 * time.Second

// upstream is a testsrv.Server (the tests' one tracked-connection server),
// with its address as REMOTE writes it.
type upstream struct {
	*testsrv.Server
	remote string
}

// startUpstream starts a TCP upstream.
func startUpstream(t testing.TB, handle func(c *net.TCPConn)) *upstream {
	t.Helper()
	return startServer(t, "tcp", handle)
}

// startServer starts an upstream on network, "tcp" or "unix"; C is the
// connection type handle takes (*net.TCPConn, or stream for either).
func startServer[C net.Conn](t testing.TB, network string, handle func(C)) *upstream {
	t.Helper()
	s := testsrv.Serve(t, network, "", func(c net.Conn, _ func()) { handle(c.(C)) })
	u := &upstream{Server: s, remote: s.Addr()}
	if network == "unix" {
		u.remote = "unix:" + u.remote
	}
	return u
}

func (u *upstream) addr() string { return u.remote }

func (u *upstream) close() { u.Close() }

// startForwarder runs a Forwarder on 127.0.0.1:0 to remote until the test
// ends, and returns it with the address clients dial.
func startForwarder(t testing.TB, cfg Config) (*Forwarder, string) {
	t.Helper()
	cfg.Local = "127.0.0.1:0"
	f := serve(t, cfg)
	return f, f.Addr().String()
}

// serve runs a Forwarder on cfg until the test ends.
func serve(t testing.TB, cfg Config) *Forwarder {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		f.Shutdown(sctx)
	})
	return f
}

// shutdown stops f, draining for up to drain, and returns its summary.
func shutdown(t *testing.T, f *Forwarder, drain time.Duration) *session.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return f.Shutdown(ctx)
}

// dialLocal connects to a forwarder's LOCAL: HOST:PORT or unix:PATH.
func dialLocal(addr string) (stream, error) {
	network := "tcp"
	if path, ok := unixPath(addr); ok {
		network, addr = "unix", path
	}
	c, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		return nil, err
	}
	return c.(stream), nil
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// eventually polls cond until it holds or the test timeout passes; for
// states nothing can be waited on directly (another process's sockets).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echo copies through a user-space buffer: the wrappers hide ReadFrom and
// WriteTo, so the test's own upstream never splices and never holds a pipe
// that the fd counts would blame on the forwarder.
func echo(c *net.TCPConn) { io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}) }

// startHTTPUpstream runs a real HTTP/1.1 server (net/http, keep-alive) on
// 127.0.0.1:0 for --reuse http tests: GET /PATH answers PATH; with ?n=N it
// answers N bytes of PATH's first letter instead; ?sleep=DUR answers after
// DUR.
func startHTTPUpstream(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/")
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d) // a slow request
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && path != "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(bytes.Repeat([]byte(path[:1]), n))
			return
		}
		io.WriteString(w, path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// httpGet sends GET /path on c and reads the response's body whole.
func httpGet(c net.Conn, br *bufio.Reader, path string) (string, error) {
	if _, err := fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// httpOnce makes one GET /path through addr on a connection of its own.
func httpOnce(addr, path string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	return httpGet(c, bufio.NewReader(c), path)
}
