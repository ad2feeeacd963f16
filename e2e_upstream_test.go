package main

// Upstream servers and clients of the end-to-end tests, all on real TCP on
// 127.0.0.1, and the child-command helper (runHelper).

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// handler serves one upstream connection. leave marks the connection as
// gone for the upstream's active count before the handler returns (and
// closes it); calling it is optional, the server calls it after the handler.
type handler func(c *net.TCPConn, leave func())

// upstream is a testsrv.Server on 127.0.0.1 (the tests' one
// tracked-connection server) that runs a handler.
type upstream struct{ *testsrv.Server }

// startUpstream serves h on 127.0.0.1:0 until the test ends.
func startUpstream(t *testing.T, h handler) *upstream {
	t.Helper()
	return startUpstreamOn(t, "127.0.0.1:0", h)
}

func startUpstreamOn(t *testing.T, addr string, h handler) *upstream {
	t.Helper()
	return &upstream{testsrv.Serve(t, "tcp", addr, func(c net.Conn, leave func()) { h(c.(*net.TCPConn), leave) })}
}

func (u *upstream) addr() string { return u.Addr() }

// echo sends back everything and passes the client's EOF on.
func echo(c *net.TCPConn, _ func()) {
	io.Copy(c, c)
	c.CloseWrite()
}

// sink reads until EOF and sends nothing.
func sink(c *net.TCPConn, _ func()) { io.Copy(io.Discard, c) }

// banner speaks first, as sshd does, then echoes.
func banner(b string) handler {
	return func(c *net.TCPConn, leave func()) {
		if _, err := io.WriteString(c, b); err != nil {
			return
		}
		echo(c, leave)
	}
}

// ticker sends one byte every interval until the client's EOF.
func ticker(interval time.Duration) handler {
	return func(c *net.TCPConn, _ func()) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := c.Write([]byte{'.'}); err != nil {
						return
					}
				}
			}
		}()
		io.Copy(io.Discard, c)
		close(stop)
		wg.Wait()
		c.CloseWrite()
	}
}

// holdUntilEOF reads until the client's EOF, leaves the active count, and
// only then answers "ok" and closes: the forwarder cannot finish the pair
// (and free a --max-conns slot) before the upstream's count went down.
func holdUntilEOF(c *net.TCPConn, leave func()) {
	io.Copy(io.Discard, c)
	leave()
	io.WriteString(c, "ok")
}

// replyAfterEOF implements the request/reply protocol of exchange: it reads
// the whole request (an 8-byte big-endian reply size, then a body) until
// EOF, and only then answers sha256(request) followed by that many bytes
// derived from the hash. A request shorter than 8 bytes asks for no bytes.
func replyAfterEOF(c *net.TCPConn, _ func()) {
	h := sha256.New()
	var hdr [8]byte
	n, err := io.ReadFull(c, hdr[:])
	h.Write(hdr[:n])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	var size int64
	if n == len(hdr) {
		size = int64(binary.BigEndian.Uint64(hdr[:]))
		if _, err := io.Copy(h, c); err != nil {
			return
		}
	}
	sum := [32]byte(h.Sum(nil))
	if _, err := c.Write(sum[:]); err != nil {
		return
	}
	io.CopyN(c, stream(sum), size)
	c.CloseWrite()
}

// stream is the pseudo-random byte stream of a seed.
func stream(seed [32]byte) io.Reader { return rand.NewChaCha8(seed) }

// exchange is one client of replyAfterEOF through the forwarder at addr:
// it sends a request of reqSize bytes (0, or 8 and more: the header asking
// for replySize bytes, then a body drawn from seed), shuts down its write
// side, and checks the reply byte for byte with sha256. It returns the
// client's local address and the bytes it sent and received.
func exchange(addr string, seed [32]byte, reqSize, replySize int64) (client string, sent, got int64, err error) {
	if (reqSize != 0 && reqSize < 8) || (reqSize == 0 && replySize != 0) {
		return "", 0, 0, fmt.Errorf("bad exchange: request %d bytes, reply %d", reqSize, replySize)
	}
	c, err := dialClient(addr)
	if err != nil {
		return "", 0, 0, err
	}
	defer c.Close()
	client = c.LocalAddr().String()
	h := sha256.New()
	w := io.MultiWriter(c, h)
	if reqSize > 0 {
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], uint64(replySize))
		if _, err := w.Write(hdr[:]); err != nil {
			return client, 0, 0, fmt.Errorf("%s: write: %w", client, err)
		}
		sent = 8
		n, err := io.CopyN(w, stream(seed), reqSize-8)
		sent += n
		if err != nil {
			return client, sent, 0, fmt.Errorf("%s: write after %d bytes: %w", client, sent, err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return client, sent, 0, fmt.Errorf("%s: CloseWrite: %w", client, err)
	}
	var sum [32]byte
	n, err := io.ReadFull(c, sum[:])
	got = int64(n)
	if err != nil {
		return client, sent, got, fmt.Errorf("%s: read the hash: got %d bytes: %w", client, n, err)
	}
	if want := [32]byte(h.Sum(nil)); sum != want {
		return client, sent, got, fmt.Errorf("%s: upstream's sha256 of the %d bytes sent: got %x; want %x", client, sent, sum, want)
	}
	rh := sha256.New()
	m, err := io.Copy(rh, c)
	got += m
	if err != nil {
		return client, sent, got, fmt.Errorf("%s: read the reply after %d bytes: %w", client, got, err)
	}
	if m != replySize {
		return client, sent, got, fmt.Errorf("%s: reply size: got %d; want %d", client, m, replySize)
	}
	wh := sha256.New()
	io.CopyN(wh, stream(sum), replySize)
	if !bytes.Equal(rh.Sum(nil), wh.Sum(nil)) {
		return client, sent, got, fmt.Errorf("%s: sha256 of the %d-byte reply: got %x; want %x", client, m, rh.Sum(nil), wh.Sum(nil))
	}
	return client, sent, got, nil
}

// dialClient connects to addr with a deadline on the whole exchange.
func dialClient(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c.(*net.TCPConn), nil
}

// echoOnce sends msg through addr to an echo upstream, shuts down its write
// side, and checks that msg comes back and then EOF.
func echoOnce(t *testing.T, addr, msg string) (client string) {
	t.Helper()
	c, err := dialClient(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("echo through %s: got %q, %v; want %q, <nil>", addr, got, err, msg)
	}
	return c.LocalAddr().String()
}

// runHelper is the child command of the child-mode tests, run by the test
// binary itself when helperEnv is set. "dial" connects through the
// forwarder at $WARMPORT_ADDR to an echo upstream and prints what it saw.
func runHelper(mode string) int {
	switch mode {
	case "dial":
		addr, port := os.Getenv("WARMPORT_ADDR"), os.Getenv("WARMPORT_PORT")
		_, p, err := net.SplitHostPort(addr)
		if err != nil || p != port {
			fmt.Fprintf(os.Stderr, "helper: WARMPORT_ADDR %q and WARMPORT_PORT %q disagree\n", addr, port)
			return 3
		}
		if _, err := strconv.Atoi(port); err != nil {
			fmt.Fprintf(os.Stderr, "helper: WARMPORT_PORT %q is not a number\n", port)
			return 3
		}
		c, err := dialClient(addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: %v\n", err)
			return 4
		}
		defer c.Close()
		io.WriteString(c, "hello from the child")
		c.CloseWrite()
		reply, err := io.ReadAll(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: read: %v\n", err)
			return 5
		}
		fmt.Printf("helper: addr=%s port=%s client=%s reply=%q\n", addr, port, c.LocalAddr(), reply)
		return 0
	}
	fmt.Fprintf(os.Stderr, "helper: unknown mode %q\n", mode)
	return 2
}

// closeIdle closes a connection that sent nothing within grace, as servers
// with a login grace time do to pre-dialed connections, and echoes the rest.
func closeIdle(grace time.Duration) handler {
	return func(c *net.TCPConn, leave func()) {
		c.SetReadDeadline(time.Now().Add(grace))
		b := make([]byte, 1)
		n, err := c.Read(b)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		if _, err := c.Write(b[:n]); err != nil {
			return
		}
		echo(c, leave)
	}
}

// resetFirst resets the first n connections it accepts as soon as their
// first byte arrives (a pooled connection that died just after its probe)
// and echoes on the others.
func resetFirst(n int) handler {
	var mu sync.Mutex
	seen := 0
	return func(c *net.TCPConn, leave func()) {
		mu.Lock()
		seen++
		doomed := seen <= n
		mu.Unlock()
		if !doomed {
			echo(c, leave)
			return
		}
		c.SetLinger(0) // Close sends RST
		c.Read(make([]byte, 1))
	}
}
