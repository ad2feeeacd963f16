package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/upstream/sshvia"
)

// bench --via measures against the user's own SSH server: REMOTE is dialed
// by it. Its first mode, the baseline, is a new SSH connection per client
// (what a fresh ssh -W or a ProxyCommand costs: TCP, key exchange, login
// and a channel), then warmport --via without and with warm channels.

// benchSSHFlags are forward's --via flags, for bench too.
func benchSSHFlags() []flagSpec {
	var out []flagSpec
	for _, name := range []string{"via", "identity", "known-hosts", "ssh-config"} {
		out = append(out, *findFlag(name))
	}
	return out
}

// benchVia opens the SSH connection of bench --via; nil without --via.
func benchVia(c *cli.Context, remote string, timeout time.Duration) (*sshvia.Tunnel, sshvia.Config, error) {
	cfg, err := sshOptions(c)
	if err != nil || cfg.Via == "" {
		return nil, cfg, err
	}
	if remote == "" {
		return nil, cfg, usageErrorf("bench --via needs REMOTE, as the SSH server dials it (e.g. localhost:5432): the embedded upstream runs here, not there")
	}
	cfg.DialTimeout = timeout
	cfg.Prompt = sshvia.TerminalPrompt()
	tun, err := sshvia.Open(c.Context, cfg)
	if err != nil {
		return nil, cfg, runtimeErrorf("bench: %s", oneLine(err.Error()))
	}
	return tun, cfg, nil
}

// freshSSHClient is one client of the baseline mode: a new SSH connection,
// a channel to remote, b.send, the first byte back.
func (b *bencher) freshSSHClient(ctx context.Context, cfg sshvia.Config, remote string) (time.Duration, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cfg.Conns = 1 // one login per client, as ssh -W makes
	tun, err := sshvia.Open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer tun.Close()
	ch, err := tun.Dial(ctx, remote)
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if len(b.send) > 0 {
		if _, err := ch.Write(b.send); err != nil {
			return 0, err
		}
	}
	// Channels have no deadlines: ctx's end closes it.
	stop := context.AfterFunc(ctx, func() { ch.Abort() })
	defer stop()
	if _, err := ch.Read(make([]byte, 1)); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("closed the channel before sending a byte")
		}
		if ctx.Err() != nil && len(b.send) == 0 {
			return 0, fmt.Errorf("sent nothing within %s: it waits for the client to speak first; give --send", b.timeout)
		}
		return 0, err
	}
	return time.Since(t0), nil
}

// runFresh is the baseline mode of bench --via.
func (b *bencher) runFresh(ctx context.Context, cfg sshvia.Config, remote string) (benchMode, error) {
	mode := benchMode{Name: "new ssh connection per client"}
	for i := 0; i < b.n; i++ {
		select {
		case <-time.After(b.interval):
		case <-ctx.Done():
			return mode, runtimeErrorf("bench: interrupted")
		}
		d, err := b.freshSSHClient(ctx, cfg, remote)
		if err != nil {
			return mode, runtimeErrorf("bench: %s: client %d: %s", mode.Name, i+1, oneLine(err.Error()))
		}
		mode.samples = append(mode.samples, d)
	}
	mode.summarize()
	return mode, nil
}
