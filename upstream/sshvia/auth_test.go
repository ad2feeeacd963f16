package sshvia

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// openErr runs Open for via and returns its error, failing if it works.
func openErr(t *testing.T, cfg Config, via string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.Via = via
	tun, err := Open(ctx, cfg)
	if err == nil {
		tun.Close()
		t.Fatal("Open succeeded; want an error")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("got a multi-line error %q; want one line", err)
	}
	return err.Error()
}

func TestHostKeys(t *testing.T) {
	e := newEnv(t)
	s := startServer(t, "127.0.0.1:0", newSigner(t), e.key)
	fp := ssh.FingerprintSHA256(s.hostKey.PublicKey())
	line := fmt.Sprintf("[127.0.0.1]:%d %s", s.port(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey()))))

	t.Run("unknown", func(t *testing.T) {
		got := openErr(t, e.cfg, "tester@"+s.addr)
		for _, want := range []string{"is not known", fp, "echo '" + line + "' >> " + e.known} {
			if !strings.Contains(got, want) {
				t.Fatalf("got %q; want %q in it", got, want)
			}
		}
	})
	t.Run("changed", func(t *testing.T) {
		e.trust(t, s.port(), newSigner(t).PublicKey())
		defer os.Remove(e.known)
		got := openErr(t, e.cfg, "tester@"+s.addr)
		want := fmt.Sprintf("ssh-keygen -R '[127.0.0.1]:%d' -f %s", s.port(), e.known)
		for _, w := range []string{"CHANGED", fp, want} {
			if !strings.Contains(got, w) {
				t.Fatalf("got %q; want %q in it", got, w)
			}
		}
	})
	t.Run("accepted with the printed line", func(t *testing.T) {
		if err := os.WriteFile(e.known, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		openTunnel(t, e, "tester@"+s.addr)
	})
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	enc, encFile := writeKey(t, filepath.Join(dir, "enc"), "sesame")
	other, otherFile := writeKey(t, filepath.Join(dir, "other"), "")
	_ = other
	s := startServer(t, "127.0.0.1:0", newSigner(t), enc)
	e.trust(t, s.port(), s.hostKey.PublicKey())

	t.Run("encrypted key without a prompt is skipped with the reason", func(t *testing.T) {
		cfg := e.cfg
		cfg.Identities = []string{otherFile, encFile}
		got := openErr(t, cfg, "tester@"+s.addr)
		for _, want := range []string{
			`authentication as "tester" failed`,
			"no agent (IdentityAgent none)",
			encFile + " is encrypted and there is no terminal",
			otherFile + " not accepted",
		} {
			if !strings.Contains(got, want) {
				t.Fatalf("got %q; want %q in it", got, want)
			}
		}
	})
	t.Run("encrypted key with a prompt, asked once across a redial", func(t *testing.T) {
		cfg := e.cfg
		cfg.Identities = []string{encFile}
		asked := 0
		cfg.Prompt = func(string) ([]byte, error) { asked++; return []byte("sesame"), nil }
		e.cfg = cfg
		tun := openTunnel(t, e, "tester@"+s.addr)
		s.drop()
		e.waitLog(t, "reconnected")
		dial(t, tun, startTarget(t, echo))
		if asked != 1 {
			t.Fatalf("asked for the passphrase %d times; want 1", asked)
		}
	})
	t.Run("missing identity", func(t *testing.T) {
		cfg := e.cfg
		cfg.Identities = []string{filepath.Join(dir, "nope")}
		got := openErr(t, cfg, "tester@"+s.addr)
		if want := "nope: no such file"; !strings.Contains(got, want) {
			t.Fatalf("got %q; want %q in it", got, want)
		}
	})
}

func TestRefusedConnect(t *testing.T) {
	e := newEnv(t)
	s := startServer(t, "127.0.0.1:0", newSigner(t), e.key)
	s.stop()
	got := openErr(t, e.cfg, "tester@"+s.addr)
	if want := "connection refused"; !strings.Contains(got, want) {
		t.Fatalf("got %q; want %q in it", got, want)
	}
}

// needSSH fails the test when OpenSSH's client is missing: the config is
// read through ssh -G.
func needSSH(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("ssh not found: install the Debian package openssh-client")
	}
}

// TestProxyJump goes through two in-process servers named by Host aliases
// of an SSH config; each hop's host key is checked.
func TestProxyJump(t *testing.T) {
	needSSH(t)
	e := newEnv(t)
	jump := startServer(t, "127.0.0.1:0", newSigner(t), e.key)
	inner := startServer(t, "127.0.0.1:0", newSigner(t), e.key)
	conf := filepath.Join(e.home, ".ssh", "config")
	text := fmt.Sprintf(`Host bastion
  HostName 127.0.0.1
  Port %d
  User jumper
Host inner
  HostName 127.0.0.1
  Port %d
  User tester
  ProxyJump bastion
  ServerAliveInterval 7
  ServerAliveCountMax 2
`, jump.port(), inner.port())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.SSHConfig = ""
	tests := []struct {
		name    string
		trusted []*testServer
		err     string
	}{
		{"bastion unknown", []*testServer{inner}, fmt.Sprintf("[127.0.0.1]:%d is not known", jump.port())},
		{"inner unknown", []*testServer{jump}, fmt.Sprintf("[127.0.0.1]:%d is not known", inner.port())},
		{"both known", []*testServer{jump, inner}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(e.known)
			for _, s := range tt.trusted {
				e.trust(t, s.port(), s.hostKey.PublicKey())
			}
			if tt.err != "" {
				if got := openErr(t, e.cfg, "inner"); !strings.Contains(got, tt.err) {
					t.Fatalf("got %q; want %q in it", got, tt.err)
				}
				return
			}
			tun := openTunnel(t, e, "inner")
			if got, want := tun.String(), "tester@"+inner.addr; got != want {
				t.Fatalf("String() = %q; want %q", got, want)
			}
			if got, want := tun.d.target.alive, 7*time.Second; got != want {
				t.Fatalf("ServerAliveInterval: got %v; want %v", got, want)
			}
			ch := dial(t, tun, startTarget(t, banner("hi")))
			b := make([]byte, 2)
			if _, err := ch.Read(b); err != nil || string(b) != "hi" {
				t.Fatalf("got %q, %v; want \"hi\", nil", b, err)
			}
			// Dropping the bastion drops the inner connection too.
			jump.drop()
			e.waitLog(t, "connection lost")
			if _, err := ch.Read(b); !errors.Is(err, ErrDropped) {
				t.Fatalf("Read after the bastion dropped: got %v; want ErrDropped", err)
			}
			e.waitLog(t, "reconnected")
			dial(t, tun, startTarget(t, echo))
		})
	}
}
