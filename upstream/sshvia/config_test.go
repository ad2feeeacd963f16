package sshvia

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestSplitDest(t *testing.T) {
	tests := []struct {
		in        string
		usr, host string
		port      int
		bad       bool
	}{
		{in: "bastion", host: "bastion"},
		{in: "bob@bastion", usr: "bob", host: "bastion"},
		{in: "bob@bastion:2222", usr: "bob", host: "bastion", port: 2222},
		{in: "[::1]:22", host: "::1", port: 22},
		{in: "ssh://me@h:23", usr: "me", host: "h", port: 23},
		{in: "a@b@h", usr: "a@b", host: "h"},
		{in: "h:0", bad: true},
		{in: "h:x", bad: true},
		{in: "@", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, h, p, err := splitDest(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("got %q %q %d; want an error", u, h, p)
				}
				return
			}
			if err != nil || u != tt.usr || h != tt.host || p != tt.port {
				t.Fatalf("got %q %q %d %v; want %q %q %d nil", u, h, p, err, tt.usr, tt.host, tt.port)
			}
		})
	}
}

// TestResolve reads a config through ssh -G: a Match block (which Go
// parsers of ssh_config reject), aliases, tokens in IdentityFile, "~" as
// the Home given, and the command line's user and port over the config's.
func TestResolve(t *testing.T) {
	needSSH(t)
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(home, ".ssh", "config")
	text := `Match host db-bastion
  User matched
Host db-bastion
  HostName 10.9.8.7
  Port 2200
  User ignored
  IdentityFile ~/.ssh/%h_%r
  UserKnownHostsFile ~/.ssh/kh_%n
  ProxyJump j1,me@j2:2022
  ServerAliveInterval 5
  ServerAliveCountMax 2
`
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ssh := filepath.Join(home, ".ssh")
	tests := []struct {
		dest string
		want host
	}{
		{"db-bastion", host{
			alias: "db-bastion", user: "matched", hostname: "10.9.8.7", port: 2200,
			identities: []string{filepath.Join(ssh, "10.9.8.7_matched")},
			knownHosts: []string{filepath.Join(ssh, "kh_db-bastion")},
			jumps:      []string{"j1", "me@j2:2022"},
			alive:      5 * time.Second, aliveMax: 2,
		}},
		{"cli@db-bastion:2300", host{
			alias: "db-bastion", user: "cli", hostname: "10.9.8.7", port: 2300,
			identities: []string{filepath.Join(ssh, "10.9.8.7_cli")},
			knownHosts: []string{filepath.Join(ssh, "kh_db-bastion")},
			jumps:      []string{"j1", "me@j2:2022"},
			alive:      5 * time.Second, aliveMax: 2,
		}},
		{"plain", host{
			alias: "plain", user: "", hostname: "plain", port: 22,
			identities: nil, // ssh's defaults, checked below
			knownHosts: []string{filepath.Join(ssh, "known_hosts"), filepath.Join(ssh, "known_hosts2")},
			alive:      defaultAliveInterval, aliveMax: defaultAliveCountMax,
		}},
	}
	r, err := newResolver(&Config{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			h, err := r.resolve(context.Background(), tt.dest)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.user == "" {
				tt.want.user = r.localUsr
			}
			if tt.want.identities == nil {
				if got, want := h.identities[0], filepath.Join(ssh, "id_rsa"); got != want {
					t.Fatalf("first default identity: got %q; want %q", got, want)
				}
				tt.want.identities = h.identities
			}
			if !reflect.DeepEqual(*h, tt.want) {
				t.Fatalf("got %+v; want %+v", *h, tt.want)
			}
		})
	}
}

func TestResolveNone(t *testing.T) {
	home := t.TempDir()
	r, err := newResolver(&Config{Home: home, SSHConfig: "none"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.resolve(context.Background(), "u@h")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(h.String(), h.knownHosts, h.alive, h.aliveMax)
	want := fmt.Sprint("u@h:22", []string{filepath.Join(home, ".ssh", "known_hosts")}, defaultAliveInterval, defaultAliveCountMax)
	if got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
}
