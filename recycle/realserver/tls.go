package realserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
)

// TLSFiles are the PEM files a TLS server is started with.
type TLSFiles struct {
	Cert, Key string // the server's certificate and key
	CA        string // the CA that signs client certificates (redis needs one even when it asks for none)
}

// RedisTLS starts redis-server listening only on a TLS port (Addr); args are
// extra options (e.g. "--tls-protocols", "TLSv1.2", or "--tls-auth-clients", "yes").
// Client certificates are not asked for unless args say so.
func RedisTLS(t testing.TB, f TLSFiles, args ...string) *Server {
	t.Helper()
	bin := testsrv.Need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	return start(t, dir, "Ready to accept connections", func(port int) *exec.Cmd {
		a := []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-ca-cert-file", f.CA, "--tls-auth-clients", "no",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "", "--daemonize", "no"}
		return exec.Command(bin, append(a, args...)...)
	})
}

// Stunnel starts stunnel4 as a TLS server on Addr in front of the plaintext
// backend (HOST:PORT); options are extra lines of its service section (e.g.
// "sslVersionMax = TLSv1.2").
func Stunnel(t testing.TB, f TLSFiles, backend string, options ...string) *Server {
	t.Helper()
	bin := testsrv.Need(t, "stunnel4", "stunnel4")
	dir := t.TempDir()
	// Ready once bound: "Configuration successful" comes before the bind,
	// and "bound to" needs debug 6.
	return start(t, dir, "bound to 127.0.0.1:", func(port int) *exec.Cmd {
		conf := fmt.Sprintf("foreground = yes\npid =\ndebug = 6\n[tls]\naccept = 127.0.0.1:%d\nconnect = %s\ncert = %s\nkey = %s\n", port, backend, f.Cert, f.Key)
		for _, o := range options {
			conf += o + "\n"
		}
		file := filepath.Join(dir, "stunnel.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, file)
	})
}
