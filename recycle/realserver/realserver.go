// Package realserver starts the real Debian servers the recycle tests speak to —
// redis-server and nginx — on free 127.0.0.1 ports in a test's temporary directory, and
// stops them when the test ends. It is for tests only, as net/http/httptest is.
//
// A port is found by listening on port 0 and closing; another process may take it before
// the server binds, so a server that reports the address in use is started again on
// another port. Readiness is the server's own log line, never a sleep (testsrv.Start).
package realserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
)

// attempts is how many free ports a server is tried on before the test fails.
const attempts = 5

// Server is one running server.
type Server struct {
	Addr string // host:port it listens on
	Port int
	Dir  string // its private directory (nginx: the prefix; www/ is the document root)

	proc *testsrv.Proc
}

// Log returns what the server printed so far.
func (s *Server) Log() string { return s.proc.Output() }

// Redis starts redis-server with no persistence; args are extra command-line options
// (e.g. "--rename-command", "RESET", "").
func Redis(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := testsrv.Need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	return start(t, dir, "Ready to accept connections", func(port int) *exec.Cmd {
		a := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", "", "--daemonize", "no", "--maxclients", "2000"}
		return exec.Command(bin, append(a, args...)...)
	})
}

// Nginx starts nginx serving Dir/www (created empty: put files there before asking) on
// a free port; locations is extra configuration inside its server block.
func Nginx(t testing.TB, locations string) *Server {
	t.Helper()
	bin := testsrv.Need(t, "nginx", "nginx")
	dir := t.TempDir()
	for _, d := range []string{"www", "tmp", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 { // else workers run as nobody, who cannot read the temp dir
		user = "user root;"
	}
	conf := filepath.Join(dir, "nginx.conf")
	return start(t, dir, "start worker processes", func(port int) *exec.Cmd {
		c := fmt.Sprintf(`daemon off;
worker_processes 1;
%s
pid %[2]s/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[2]s/tmp/body;
	proxy_temp_path %[2]s/tmp/proxy;
	fastcgi_temp_path %[2]s/tmp/fastcgi;
	uwsgi_temp_path %[2]s/tmp/uwsgi;
	scgi_temp_path %[2]s/tmp/scgi;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:%[3]d;
		root %[2]s/www;
		%[4]s
	}
}
`, user, dir, port, locations)
		if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "-e", "stderr", "-p", dir, "-c", conf)
	})
}

// start runs the command made for a free port until its output shows ready, trying
// another port when the chosen one was taken meanwhile.
func start(t testing.TB, dir, ready string, mk func(port int) *exec.Cmd) *Server {
	t.Helper()
	var err error
	for range attempts {
		port := testsrv.FreePort(t)
		var p *testsrv.Proc
		if p, err = testsrv.Start(t, mk(port), ready); err == nil {
			return &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir, proc: p}
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("%s did not start: %v", dir, err)
	return nil
}
