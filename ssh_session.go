package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/upstream/sshvia"
)

// sshTunnel is one SSH tunnel of a session (sshvia's few connections to one
// server) and the forwards that use it.
//
// Forwards of one profile whose --via and SSH options are the same share one
// tunnel, as OpenSSH's ControlMaster shares a connection: one passphrase
// prompt, logins bounded by the tunnel's connections rather than the
// forwards, one keepalive per connection, and a drop that is one event with
// one line per drop and recovery. Channels cost the bastion little
// (MaxSessions does not count forwarding channels) and are independent
// flows, so sharing costs a forward nothing but a share of the tunnel's TCP
// windows under bulk traffic, as several -L of one ssh do.
type sshTunnel struct {
	key   string
	cfg   sshvia.Config
	tun   *sshvia.Tunnel
	names []string // the forwards on it, for the drop and recovery lines

	mu  sync.Mutex
	fws []*forward.Forwarder // told to rewarm when the connection is back
}

// upstream makes cfg reach REMOTE through t: its pool's upstreams are
// direct-tcpip channels (each REMOTE candidate dialed by the SSH server),
// relayed by the copier. A nil t (no --via) leaves cfg alone.
func (t *sshTunnel) upstream(cfg *forward.Config) {
	if t == nil {
		return
	}
	tun := t.tun
	cfg.DialStream = func(ctx context.Context, remote string) (forward.Stream, error) {
		ch, err := tun.Dial(ctx, remote)
		if err != nil {
			return nil, err // never a typed nil
		}
		return ch, nil
	}
	cfg.Via = tun.String()
}

// serves adds fw to the forwarders rewarmed after a recovery.
func (t *sshTunnel) serves(fw *forward.Forwarder) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.fws = append(t.fws, fw)
	t.mu.Unlock()
}

// reconnected: the connection is back; the pools drop the channels that
// died with the old one and open new ones now, not at the next client.
func (t *sshTunnel) reconnected() {
	t.mu.Lock()
	fws := slices.Clone(t.fws)
	t.mu.Unlock()
	for _, fw := range fws {
		fw.Rewarm()
	}
}

// tunnelKey is what makes two forwards' SSH connections the same.
func tunnelKey(c sshvia.Config) string {
	return strings.Join([]string{c.Via, strings.Join(c.Identities, "\x00"), c.KnownHosts, c.SSHConfig, strconv.Itoa(c.Conns)}, "\x01")
}

// openTunnels opens the SSH connections of specs that have --via, before
// anything listens or prints its ready line, and sets each spec's tunnel.
// A connection that fails is exit 1 with sshvia's one line (refused, host
// key and its fingerprint, each auth method tried); those already open are
// closed. out gets each tunnel's drop and recovery lines, named as the
// forwards' lines are.
func openTunnels(ctx context.Context, specs []forwardSpec, out *lineQueue, up bool) ([]*sshTunnel, error) {
	var all []*sshTunnel
	byKey := map[string]*sshTunnel{}
	for i := range specs {
		s := &specs[i]
		if s.ssh.Via == "" {
			continue
		}
		k := tunnelKey(s.ssh)
		t := byKey[k]
		if t == nil {
			// The first forward's --dial-timeout bounds each connect.
			t = &sshTunnel{key: k, cfg: s.ssh}
			t.cfg.DialTimeout = s.cfg.DialTimeout
			byKey[k] = t
			all = append(all, t)
		}
		if up {
			t.names = append(t.names, s.name)
		}
		s.tunnel = t
	}
	for _, t := range all {
		cfg := t.cfg
		cfg.Prompt = sshvia.TerminalPrompt()
		cfg.OnReconnect = t.reconnected
		tag := ""
		if len(t.names) > 0 {
			tag = " (" + strings.Join(t.names, ", ") + ")"
		}
		cfg.Logf = func(format string, a ...any) {
			out.printf("warmport: %s%s\n", oneLine(fmt.Sprintf(format, a...)), tag)
		}
		tun, err := sshvia.Open(ctx, cfg)
		if err != nil {
			closeTunnels(all)
			name := ""
			if len(t.names) == 1 {
				name = t.names[0]
			}
			return nil, namedError(name, runtimeErrorf("%s", oneLine(err.Error())))
		}
		t.tun = tun
	}
	return all, nil
}

// closeTunnels closes the tunnels that are open.
func closeTunnels(all []*sshTunnel) {
	for _, t := range all {
		if t.tun != nil {
			t.tun.Close()
		}
	}
}
