//go:build unix

// Package sshdtest runs OpenSSH's sshd for tests: on 127.0.0.1, with a host
// key of its own and the config in a temp dir, started with -D -e, killed
// with the processes it forked for connections (as a crash of the server
// would) and started again on the same port with the same host key. It is
// imported only by tests (sshvia's and the end-to-end tests of warmport
// --via); a missing binary fails the test naming its Debian package.
package sshdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// Bin is OpenSSH's sshd as Debian installs it.
const Bin = "/usr/sbin/sshd"

// Server is one sshd of a test.
type Server struct {
	t       testing.TB
	Dir     string // its config, host key and pid file
	Port    int
	HostPub string        // the host key's public line, "ssh-ed25519 AAAA..."
	proc    *testsrv.Proc // running now, or nil
}

// Keygen makes an unencrypted ed25519 key pair at file (and file.pub) and
// returns the public line.
func Keygen(t testing.TB, file string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen (Debian package openssh-client): %v: %s", err, out)
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		t.Fatalf("no key in %s.pub", file)
	}
	return f[0] + " " + f[1]
}

// FreePort is a port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return testsrv.FreePort(t)
}

// New writes an sshd's files, not started yet: users log in with the keys in
// authFile; extra lines go into sshd_config. The test's end kills it.
func New(t testing.TB, authFile string, extra ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		t.Fatalf("%s missing: install the Debian package openssh-server", Bin)
	}
	// sshd checks its privilege separation directory even when unused.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd (its privilege separation directory); create it as root: %v", err)
	}
	s := &Server{t: t, Dir: t.TempDir(), Port: FreePort(t)}
	s.HostPub = Keygen(t, filepath.Join(s.Dir, "host_ed25519"))
	conf := append([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.Dir, "host_ed25519"),
		"AuthorizedKeysFile " + authFile,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
	}, extra...)
	for _, d := range []string{"AllowTcpForwarding yes", "LogLevel INFO"} {
		if !strings.Contains(strings.Join(extra, "\n"), strings.Fields(d)[0]) {
			conf = append(conf, d)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "sshd_config"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Addr is 127.0.0.1:Port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start runs sshd -D -e and returns the moment it logged that it listens.
func (s *Server) Start() time.Time {
	s.t.Helper()
	cmd := exec.Command(Bin, "-D", "-e", "-f", filepath.Join(s.Dir, "sshd_config"))
	p, err := testsrv.Start(s.t, cmd, "Server listening on")
	if err != nil {
		s.t.Fatalf("sshd: %v", err)
	}
	s.proc = p
	return p.ReadyAt()
}

// Proc is the running sshd (its log is its Output), or nil.
func (s *Server) Proc() *testsrv.Proc { return s.proc }

// Kill ends sshd and the processes it forked for connections (each in a
// session of its own, so not in its process group) at once.
func (s *Server) Kill() {
	if s.proc == nil {
		return
	}
	// Stopped, sshd forks no connection process between the look at /proc
	// and the kill.
	s.proc.Signal(syscall.SIGSTOP)
	for _, pid := range Descendants(s.proc.Pid()) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.proc.Kill()
	s.proc = nil
}

// Descendants lists pid's children and theirs, from /proc.
func Descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	var walk func(int)
	walk = func(pp int) {
		for c, par := range parent {
			if par == pp {
				out = append(out, c)
				walk(c)
			}
		}
	}
	walk(pid)
	return out
}
