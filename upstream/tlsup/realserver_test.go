package tlsup

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmport/warmport/recycle/realserver"
	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// Real TLS servers from Debian, started and stopped by the tests
// (recycle/realserver, on testsrv's launcher).

// redisTLS starts redis-server with only a TLS port, its certificate from ca.
func redisTLS(t testing.TB, ca *tlstest.CA, args ...string) string {
	t.Helper()
	leaf := ca.Localhost(t)
	return realserver.RedisTLS(t, realserver.TLSFiles{Cert: leaf.CertFile, Key: leaf.KeyFile, CA: ca.File}, args...).Addr
}

// stunnelTLS starts stunnel4 as a TLS server in front of backend.
func stunnelTLS(t testing.TB, ca *tlstest.CA, backend string, options ...string) string {
	t.Helper()
	leaf := ca.Localhost(t)
	return realserver.Stunnel(t, realserver.TLSFiles{Cert: leaf.CertFile, Key: leaf.KeyFile, CA: ca.File}, backend, options...).Addr
}

// command sends a RESP command and returns the reply's first line, or the
// bulk string's content.
func command(t testing.TB, c *Conn, r *bufio.Reader, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	c.SetDeadline(time.Now().Add(waitBound))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("%s: write: %v", args[0], err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: read: %v", args[0], err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") || line == "$-1" {
		return line
	}
	n, _ := strconv.Atoi(line[1:])
	bulk := make([]byte, n+2)
	if _, err := io.ReadFull(r, bulk); err != nil {
		t.Fatalf("%s: read bulk: %v", args[0], err)
	}
	return string(bulk[:n])
}

// relay is a tiny plaintext-to-TLS forwarder for a real client: each
// accepted connection gets a fresh Conn, with the copier's half-close.
func relay(t testing.TB, dial func() (*Conn, error)) string {
	t.Helper()
	return plainServer(t, func(client net.Conn) {
		up, err := dial()
		if err != nil {
			t.Errorf("relay: %v", err)
			return
		}
		defer up.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(up, client)
			up.CloseWrite()
			close(done)
		}()
		io.Copy(client, up)
		client.(*net.TCPConn).CloseWrite()
		<-done
	})
}
