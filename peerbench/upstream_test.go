package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// TestHTTPUpstreamSpeaksHTTP: Go's HTTP client reads httpOK's reply as a
// complete HTTP/1.1 response and sends the next request on the same
// connection, which is what lets warmport --reuse http recycle it.
func TestHTTPUpstreamSpeaksHTTP(t *testing.T) {
	s, err := startServer("127.0.0.1:0", httpOK)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := range 2 {
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
		req, err := http.NewRequest("GET", "http://"+s.addr()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body) != 64 {
			t.Fatalf("request %d: status %d, %d body bytes, %v; want 200 and 64 bytes", i, resp.StatusCode, len(body), err)
		}
		if want := i > 0; reused != want {
			t.Errorf("request %d: connection reused %v; want %v", i, reused, want)
		}
	}
}

// TestHTTPUpstreamPipelined: two requests sent at once get two replies, in
// one read or split, and a partial request gets none.
func TestHTTPUpstreamPipelined(t *testing.T) {
	s, err := startServer("127.0.0.1:0", httpOK)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	c, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := append(append(append([]byte{}, httpRequest...), httpRequest...), httpRequest[:10]...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*len(httpReply))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if want := string(httpReply) + string(httpReply); string(got) != want {
		t.Fatalf("got %q; want two replies", got)
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after a partial request: got %q, %v; want EOF and nothing", rest, err)
	}
}
