package main

// A real OpenSSH sshd for the --via tests (sshdtest.Server: 127.0.0.1,
// generated host and user keys, killed with its connection processes and
// started again on the same port). HOME is a temp dir whose known_hosts
// trusts it; no agent (SSH_AUTH_SOCK is empty): the user key is given with
// --identity.

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/warmport/warmport/upstream/sshvia/sshdtest"
)

type viaSSHD struct {
	*sshdtest.Server
	t       *testing.T
	home    string // HOME for warmport: .ssh/known_hosts trusts this sshd
	userKey string // the user's private key, for --identity
}

// newViaSSHD starts an sshd (extra lines go into sshd_config) that the
// test's user key logs in to.
func newViaSSHD(t *testing.T, extra ...string) *viaSSHD {
	t.Helper()
	s := &viaSSHD{t: t, home: t.TempDir(), userKey: filepath.Join(t.TempDir(), "id_ed25519")}
	auth := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(auth, []byte(sshdtest.Keygen(t, s.userKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Server = sshdtest.New(t, auth, append([]string{"PermitRootLogin prohibit-password"}, extra...)...)
	if err := os.MkdirAll(filepath.Join(s.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostPub)
	if err := os.WriteFile(filepath.Join(s.home, ".ssh", "known_hosts"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start()
	return s
}

// via is --via's value: the current user at this sshd.
func (s *viaSSHD) via() string {
	u, err := user.Current()
	if err != nil {
		s.t.Fatal(err)
	}
	return u.Username + "@" + s.Addr()
}

// env is warmport's environment: this HOME, no agent.
func (s *viaSSHD) env() []string {
	return []string{"NO_COLOR=1", "HOME=" + s.home, "SSH_AUTH_SOCK="}
}

// args are the --via flags that reach this sshd with the test's key.
func (s *viaSSHD) args() []string {
	return []string{"--via", s.via(), "--identity", s.userKey, "--ssh-config", "none"}
}
