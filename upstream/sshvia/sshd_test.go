package sshvia

import (
	"bufio"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warmport/warmport/upstream/sshvia/sshdtest"
)

// realSSHD is OpenSSH's sshd, run by the test on 127.0.0.1 with its own
// host key and authorized_keys in a temp dir (sshdtest.Server).
type realSSHD struct {
	*sshdtest.Server
	dir     string
	port    int
	hostKey ssh.PublicKey
}

func keygen(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	sshdtest.Keygen(t, file)
	pub := readPub(file + ".pub")
	if pub == nil {
		t.Fatalf("no key in %s.pub", file)
	}
	return pub
}

func freePort(t testing.TB) int { return sshdtest.FreePort(t) }

// newSSHD writes sshd's files; user is authorized with the public key in
// authFile; extra lines go into sshd_config.
func newSSHD(t testing.TB, authFile string, extra ...string) *realSSHD {
	t.Helper()
	srv := sshdtest.New(t, authFile, extra...)
	s := &realSSHD{Server: srv, dir: srv.Dir, port: srv.Port}
	s.hostKey = readPub(filepath.Join(srv.Dir, "host_ed25519.pub"))
	return s
}

func (s *realSSHD) addr() string { return s.Addr() }

// start runs sshd -D -e and returns once it logs that it listens.
func (s *realSSHD) start() time.Time { return s.Start() }

// kill ends sshd and the processes it forked for connections, as a crash
// or a reboot of the bastion would.
func (s *realSSHD) kill() { s.Kill() }

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
