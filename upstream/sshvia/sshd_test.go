package sshvia

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// realSSHD is OpenSSH's sshd, run by the test on 127.0.0.1 with its own
// host key and authorized_keys in a temp dir.
type realSSHD struct {
	t       testing.TB
	dir     string
	port    int
	hostKey ssh.PublicKey
	cmd     *exec.Cmd
	exited  chan struct{}
}

func keygen(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen (Debian: openssh-client): %v: %s", err, out)
	}
	pub := readPub(file + ".pub")
	if pub == nil {
		t.Fatalf("no key in %s.pub", file)
	}
	return pub
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

// newSSHD writes sshd's files; user is authorized with the public key in
// authFile; extra lines go into sshd_config.
func newSSHD(t testing.TB, authFile string, extra ...string) *realSSHD {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Fatalf("%s missing: install the Debian package openssh-server", sshdPath)
	}
	// sshd checks its privilege separation directory even when unused.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd (its privilege separation directory); create it as root: %v", err)
	}
	s := &realSSHD{t: t, dir: t.TempDir(), port: freePort(t)}
	s.hostKey = keygen(t, filepath.Join(s.dir, "host_ed25519"))
	conf := []string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"AuthorizedKeysFile " + authFile,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"StrictModes no",
		"UsePAM no",
		"AllowTcpForwarding yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"LogLevel INFO",
	}
	conf = append(conf, extra...)
	if err := os.WriteFile(filepath.Join(s.dir, "sshd_config"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	return s
}

func (s *realSSHD) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs sshd -D -e and returns once it logs that it listens.
func (s *realSSHD) start() time.Time {
	s.t.Helper()
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("sshd: %v", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	listening := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server listening on") {
				select {
				case listening <- time.Now():
				default:
				}
			}
		}
	}()
	// Wait closes stderr's pipe, even while a connection's process that
	// inherited it lives on.
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case at := <-listening:
		return at
	case <-s.exited:
		s.t.Fatal("sshd exited before listening")
	case <-time.After(10 * time.Second):
		s.t.Fatal("sshd not listening after 10s")
	}
	return time.Time{}
}

// kill ends sshd and the processes it forked for connections (each in its
// own session), as a crash or a reboot of the bastion would.
func (s *realSSHD) kill() {
	if s.cmd == nil {
		return
	}
	// Stopped, sshd forks no connection process between the look at
	// /proc and the kill.
	s.cmd.Process.Signal(syscall.SIGSTOP)
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Error("sshd still running 10s after SIGKILL")
	}
	s.cmd = nil
}

// descendants lists pid's children and theirs, from /proc.
func descendants(pid int) []int {
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

// startAgent runs an ssh-agent of the test's own on a socket in a temp dir
// and adds key to it.
func startAgent(t testing.TB, key string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("ssh-agent (Debian: openssh-client): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The agent prints its socket once it listens there.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, sock) {
		t.Fatalf("ssh-agent said %q, %v; want its socket", line, err)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}

func currentUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// sshdEnv is a real sshd with a user key in an agent of the test's own and
// a home whose known_hosts trusts the sshd.
func sshdEnv(t testing.TB, extra ...string) (*testEnv, *realSSHD) {
	t.Helper()
	e := newEnv(t)
	auth := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(auth, ssh.MarshalAuthorizedKey(e.key), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSSHD(t, auth, extra...)
	e.trust(t, s.port, s.hostKey)
	agentKey := filepath.Join(t.TempDir(), "id")
	if err := os.Rename(e.keyFile, agentKey); err != nil {
		t.Fatal(err)
	}
	e.cfg.AgentSock = startAgent(t, agentKey)
	return e, s
}
