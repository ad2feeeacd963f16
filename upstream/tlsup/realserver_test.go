package tlsup

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// Real TLS servers from Debian, started and stopped by the tests.

// need returns the path of a binary, failing the test with the Debian
// package to install when it is missing.
func need(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s", bin, pkg)
	}
	return p
}

// freePort returns a port nobody listened on a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// startServer runs cmd until t ends, returning once a line of its output
// (stdout or stderr) contains ready.
func startServer(t testing.TB, cmd *exec.Cmd, ready string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(waitBound):
			cmd.Process.Kill()
			<-exited
		}
	})
	found := make(chan struct{})
	early := make(chan string, 1) // the output of a server that exited before it was ready
	go func() {
		defer func() { cmd.Wait(); close(exited) }()
		var log strings.Builder
		isReady := false
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if !isReady {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), ready) {
					isReady = true
					close(found)
				}
			}
		}
		r.Close()
		if !isReady {
			early <- log.String()
		}
	}()
	select {
	case <-found:
	case out := <-early:
		t.Fatalf("%s exited before it was ready:\n%s", cmd.Path, out)
	case <-time.After(2 * waitBound):
		t.Fatalf("%s not ready after %v", cmd.Path, 2*waitBound)
	}
}

// redisTLS starts redis-server with only a TLS port, its certificate from ca.
func redisTLS(t testing.TB, ca *tlstest.CA, args ...string) string {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	leaf := ca.Localhost(t)
	dir := t.TempDir()
	port := freePort(t)
	args = append([]string{"--port", "0", "--bind", "127.0.0.1", "--tls-port", port,
		"--tls-cert-file", leaf.CertFile, "--tls-key-file", leaf.KeyFile, "--tls-ca-cert-file", ca.File,
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", ""}, args...)
	if !hasArg(args, "--tls-auth-clients") {
		args = append(args, "--tls-auth-clients", "no")
	}
	startServer(t, exec.Command(bin, args...), "Ready to accept connections")
	return "127.0.0.1:" + port
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

// stunnelTLS starts stunnel4 as a TLS server in front of backend.
func stunnelTLS(t testing.TB, ca *tlstest.CA, backend string, options ...string) string {
	t.Helper()
	bin := need(t, "stunnel4", "stunnel4")
	leaf := ca.Localhost(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf("foreground = yes\npid =\ndebug = 6\n[tls]\naccept = 127.0.0.1:%s\nconnect = %s\ncert = %s\nkey = %s\n%s\n",
		port, backend, leaf.CertFile, leaf.KeyFile, strings.Join(options, "\n"))
	file := tlstest.WriteFile(t, dir, "stunnel.conf", []byte(conf))
	startServer(t, exec.Command(bin, file), "bound to 127.0.0.1:"+port)
	return "127.0.0.1:" + port
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
