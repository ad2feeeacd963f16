package recycle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warmport/warmport/recycle/realserver"
)

// httpVia returns a keep-alive client whose every connection goes through rp.
func httpVia(t *testing.T, rp *recProxy) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", rp.addr())
		},
		MaxConnsPerHost:       1,
		ExpectContinueTimeout: waitTimeout,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// fetch does req and reads the whole body, checking the status.
func fetch(t *testing.T, c *http.Client, req *http.Request, status int) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d; want %d", req.Method, req.URL.Path, resp.StatusCode, status)
	}
	return resp, body
}

func newReq(t *testing.T, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://upstream"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestRealNginx(t *testing.T) {
	srv := realserver.Nginx(t, `
		location = /empty { return 204; }
		location /gz/ { gzip on; gzip_types text/plain; gzip_min_length 1; }
		location = /close.txt { keepalive_timeout 0; }
	`)
	www := filepath.Join(srv.Dir, "www")
	write := func(name string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(www, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(www, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	small := bytes.Repeat([]byte("s"), 1000)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: many chunks through the proxy
	text := []byte(strings.Repeat("a line of text that compresses well\n", 3000))
	write("small.txt", small)
	write("big.bin", big)
	write("gz/page.txt", text)
	write("close.txt", small)

	rp := newRecProxy(t, HTTP, srv.Addr)
	c := httpVia(t, rp)
	var conn0 *recConn
	step := func(what string, req *http.Request, status int, wantBody []byte, clean bool) (*http.Response, []byte) {
		t.Helper()
		resp, body := fetch(t, c, req, status)
		if wantBody != nil && !bytes.Equal(body, wantBody) {
			t.Fatalf("%s: body of %d bytes; want %d", what, len(body), len(wantBody))
		}
		if conn0 == nil {
			conn0 = rp.conn(t, 0)
		}
		return resp, rp.mark(t, conn0, what, clean)
	}

	resp, _ := step("GET sized", newReq(t, "GET", "/small.txt", nil), 200, small, true)
	etag := resp.Header.Get("ETag")
	step("HEAD", newReq(t, "HEAD", "/big.bin", nil), 200, []byte{}, true)
	step("GET 4 MiB", newReq(t, "GET", "/big.bin", nil), 200, big, true)
	step("204", newReq(t, "GET", "/empty", nil), 204, []byte{}, true)
	req := newReq(t, "GET", "/small.txt", nil)
	req.Header.Set("If-None-Match", etag)
	step("304", req, 304, []byte{}, true)
	_, wire := step("GET gzip, chunked", newReq(t, "GET", "/gz/page.txt", nil), 200, text, true)
	if !bytes.Contains(wire, []byte("Transfer-Encoding: chunked")) {
		t.Fatalf("nginx's gzip reply was not chunked:\n%.300s", wire)
	}
	step("GET after all that", newReq(t, "GET", "/small.txt", nil), 200, small, true)

	t.Run("client sends Connection: close", func(t *testing.T) {
		req := newReq(t, "GET", "/small.txt", nil)
		req.Close = true
		step("GET Connection: close", req, 200, small, false)
	})
	t.Run("server sends Connection: close", func(t *testing.T) {
		rp := newRecProxy(t, HTTP, srv.Addr)
		c := httpVia(t, rp)
		fetch(t, c, newReq(t, "GET", "/small.txt", nil), 200)
		rp.mark(t, rp.conn(t, 0), "GET keep-alive", true)
		fetch(t, c, newReq(t, "GET", "/close.txt", nil), 200)
		wire := rp.mark(t, rp.conn(t, 0), "GET keepalive_timeout 0", false)
		if !bytes.Contains(wire, []byte("Connection: close")) {
			t.Fatalf("nginx did not close:\n%.300s", wire)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		rp := newRecProxy(t, HTTP, srv.Addr)
		raw, err := net.Dial("tcp", rp.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		two := "GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\nHEAD /big.bin HTTP/1.1\r\nHost: a\r\n\r\n"
		if _, err := io.WriteString(raw, two); err != nil {
			t.Fatal(err)
		}
		br := bufioReader(raw)
		for _, m := range []string{"GET", "HEAD"} {
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		rp.mark(t, rp.conn(t, 0), "two pipelined", true)
	})
}

// Go's own server: replies held mid-way, request bodies and 100-continue.
func TestRealGoHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/held":
			io.WriteString(w, strings.Repeat("h", 5000))
			w.(http.Flusher).Flush() // chunked: no Content-Length
			<-release
			io.WriteString(w, "end")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	}))
	defer srv.Close()
	rp := newRecProxy(t, HTTP, srv.Listener.Addr().String())
	c := httpVia(t, rp)

	resp, err := c.Do(newReq(t, "GET", "/held", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	rc := rp.conn(t, 0)
	if rp.clean(rc) {
		t.Fatal("Clean() = true mid-reply; want false")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "end" {
		t.Fatalf("rest of the held reply = %q; want end", rest)
	}
	rp.mark(t, rc, "held reply", true)

	body := strings.Repeat("p", 100000)
	// io.MultiReader hides the length: Go sends the body chunked.
	_, got := fetch(t, c, newReq(t, "POST", "/echo", io.MultiReader(strings.NewReader(body))), 200)
	if string(got) != body {
		t.Fatalf("echo of a chunked POST: %d bytes; want %d", len(got), len(body))
	}
	rp.mark(t, rc, "chunked POST", true)

	req := newReq(t, "POST", "/echo", strings.NewReader(body))
	req.Header.Set("Expect", "100-continue")
	fetch(t, c, req, 200)
	wire := rp.mark(t, rc, "POST with 100-continue", true)
	if !bytes.Contains(wire, []byte("100 Continue")) {
		t.Fatalf("no 100 Continue from Go's server:\n%.200s", wire)
	}

	fetch(t, c, newReq(t, "GET", "/close", nil), 200)
	rp.mark(t, rc, "server's Connection: close", false)

	t.Run("HTTP/1.0", func(t *testing.T) {
		rp := newRecProxy(t, HTTP, srv.Listener.Addr().String())
		raw, err := net.Dial("tcp", rp.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		fmt.Fprint(raw, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, err := http.ReadResponse(bufioReader(raw), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		rp.mark(t, rp.conn(t, 0), "HTTP/1.0 keep-alive", false)
	})
}
