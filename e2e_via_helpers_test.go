package main

// A real OpenSSH sshd for the --via tests: started by the test on
// 127.0.0.1 with generated host and user keys, killed (with the processes
// it forked for connections, as a crash of the bastion would) and started
// again on the same port with the same host key. HOME is a temp dir whose
// known_hosts trusts it; no agent (SSH_AUTH_SOCK is empty): the user key
// is given with --identity.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const sshdBin = "/usr/sbin/sshd"

type viaSSHD struct {
	t       *testing.T
	dir     string
	port    int
	hostPub string // the host key's public line: "ssh-ed25519 AAAA..."
	home    string // HOME for warmport: .ssh/known_hosts trusts this sshd
	userKey string // the user's private key, for --identity
	cmd     *exec.Cmd
	exited  chan struct{}
}

// sshKeygen makes an unencrypted ed25519 key pair and returns the public line.
func sshKeygen(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen (Debian package openssh-client): %v\n%s", err, out)
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return f[0] + " " + f[1]
}

// newViaSSHD writes an sshd's files (extra lines go into sshd_config) and
// starts it.
func newViaSSHD(t *testing.T, extra ...string) *viaSSHD {
	t.Helper()
	if _, err := os.Stat(sshdBin); err != nil {
		t.Fatalf("%s missing: install the Debian package openssh-server", sshdBin)
	}
	// sshd checks its privilege separation directory even when unused.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd; create it as root: %v", err)
	}
	s := &viaSSHD{t: t, dir: t.TempDir(), port: freePort(t), home: t.TempDir()}
	s.hostPub = sshKeygen(t, filepath.Join(s.dir, "host_ed25519"))
	sshDir := filepath.Join(s.home, ".ssh")
	os.MkdirAll(sshDir, 0o700)
	s.userKey = filepath.Join(t.TempDir(), "id_ed25519")
	userPub := sshKeygen(t, s.userKey)
	auth := filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(auth, []byte(userPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.trust(filepath.Join(sshDir, "known_hosts"))
	conf := append([]string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"AuthorizedKeysFile " + auth,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"LogLevel VERBOSE",
	}, extra...)
	if !strings.Contains(strings.Join(extra, "\n"), "AllowTcpForwarding") {
		conf = append(conf, "AllowTcpForwarding yes")
	}
	if err := os.WriteFile(filepath.Join(s.dir, "sshd_config"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func (s *viaSSHD) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// via is --via's value: the current user at this sshd.
func (s *viaSSHD) via() string {
	u, err := user.Current()
	if err != nil {
		s.t.Fatal(err)
	}
	return u.Username + "@" + s.addr()
}

// trust writes a known_hosts file with this sshd's host key.
func (s *viaSSHD) trust(file string) {
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, s.hostPub)
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// env is warmport's environment: this HOME, no agent.
func (s *viaSSHD) env() []string {
	return []string{"NO_COLOR=1", "HOME=" + s.home, "SSH_AUTH_SOCK="}
}

// args are the --via flags that reach this sshd with the test's key.
func (s *viaSSHD) args() []string {
	return []string{"--via", s.via(), "--identity", s.userKey, "--ssh-config", "none"}
}

// start runs sshd -D -e and returns when it logs that it listens.
func (s *viaSSHD) start() time.Time {
	s.t.Helper()
	cmd := exec.Command(sshdBin, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"))
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
	log := &lockedBuffer{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "Server listening on") {
				select {
				case listening <- time.Now():
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case at := <-listening:
		return at
	case <-exited:
		s.t.Fatalf("sshd exited before listening:\n%s", log)
	case <-time.After(readyTimeout):
		s.t.Fatalf("sshd not listening after %v:\n%s", readyTimeout, log)
	}
	return time.Time{}
}

// kill ends sshd and the processes it forked for connections, at once.
func (s *viaSSHD) kill() {
	if s.cmd == nil {
		return
	}
	// Stopped, sshd forks nothing between the look at /proc and the kill.
	s.cmd.Process.Signal(syscall.SIGSTOP)
	for _, pid := range childPIDs(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		s.t.Errorf("sshd still running %v after SIGKILL", exitTimeout)
	}
	s.cmd = nil
}

// childPIDs lists pid's descendants, from /proc.
func childPIDs(pid int) []int {
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
