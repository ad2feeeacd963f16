// Package realserver starts the real Debian servers the recycle tests speak to —
// redis-server and nginx — on free 127.0.0.1 ports in a test's temporary directory, and
// stops them when the test ends. It is for tests only, as net/http/httptest is.
//
// A port is found by listening on port 0 and closing; another process may take it before
// the server binds, so a server that reports the address in use is started again on
// another port. Readiness is the server's own log line, never a sleep.
package realserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadlines bound waits on a loaded machine; they are no claim about speed.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	attempts     = 5
)

// Server is one running server.
type Server struct {
	Addr string // host:port it listens on
	Port int
	Dir  string // its private directory (nginx: the prefix; www/ is the document root)

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder // its output, for failure messages (bounded)
	done chan struct{}   // closed when it exited
}

// Log returns what the server printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Redis starts redis-server with no persistence; args are extra command-line options
// (e.g. "--rename-command", "RESET", "").
func Redis(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
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
	bin := need(t, "nginx", "nginx")
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

// need returns the path of a server binary, failing the test with the Debian package to
// install when it is missing.
func need(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/usr/bin"} {
			if _, err := os.Stat(filepath.Join(d, bin)); err == nil {
				return filepath.Join(d, bin)
			}
		}
		t.Fatalf("%s not found: install the Debian package %s", bin, pkg)
	}
	return p
}

// start runs the command made for a free port until its output shows ready, trying
// another port when the chosen one was taken meanwhile.
func start(t testing.TB, dir, ready string, mk func(port int) *exec.Cmd) *Server {
	t.Helper()
	var last string
	for range attempts {
		port := freePort(t)
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir, cmd: mk(port), done: make(chan struct{})}
		ok, err := s.run(ready)
		if ok {
			t.Cleanup(s.stop)
			return s
		}
		last = fmt.Sprintf("%v\n%s", err, s.Log())
		if !strings.Contains(s.Log(), "in use") {
			break
		}
	}
	t.Fatalf("%s did not start: %s", dir, last)
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run starts the process and waits for the ready line in its output.
func (s *Server) run(ready string) (bool, error) {
	r, w := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = w, w
	s.cmd.SysProcAttr = dieWithParent() // never outlive a killed test
	if err := s.cmd.Start(); err != nil {
		return false, err
	}
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		seen := false
		for sc.Scan() {
			s.mu.Lock()
			if s.log.Len() < 256<<10 {
				s.log.WriteString(sc.Text() + "\n")
			}
			s.mu.Unlock()
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		io.Copy(io.Discard, r)
	}()
	var werr error
	go func() {
		werr = s.cmd.Wait()
		w.Close()
		close(s.done)
	}()
	select {
	case <-readyc:
		return true, nil
	case <-s.done:
		return false, fmt.Errorf("exited: %v", werr)
	case <-time.After(startTimeout):
		s.stop()
		return false, fmt.Errorf("no %q within %v", ready, startTimeout)
	}
}

// stop ends the server gracefully, then by force.
func (s *Server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
	}
}
