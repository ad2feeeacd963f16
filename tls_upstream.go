package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/upstream/tlsup"
)

// tlsFlagNames are the TLS flags other than --tls itself, in the order
// forward's help lists them; each needs --tls.
var tlsFlagNames = []string{"tls-ca", "tls-server-name", "tls-cert", "tls-key", "tls-insecure"}

// tlsUpstream is how a forward reaches a TLS REMOTE: the socket as for a
// plain REMOTE, then a verified handshake with one shared config per
// REMOTE candidate (each verified for its own host), whose session cache
// makes every dial after the first a resumption.
type tlsUpstream struct {
	targets map[string]tlsTarget // by REMOTE candidate, as forward dials them
	warning string               // --tls-insecure's line, or ""
}

// tlsTarget is one REMOTE candidate reached over TLS.
type tlsTarget struct {
	network, addr string // "tcp" HOST:PORT or "unix" PATH
	cfg           *tls.Config
}

// tlsFor reads the TLS flags of c for remote (a checked REMOTE): nil
// without --tls. Every error is a usage error naming the flag to fix:
// a TLS flag without --tls, --reuse with --tls, and tlsup's own (a file
// that cannot be read, holds no PEM block, or a key that is not the
// certificate's).
func tlsFor(c *cli.Context, remote string) (*tlsUpstream, error) {
	if !c.Bool("tls") {
		for _, n := range tlsFlagNames {
			if c.IsSet(n) {
				return nil, usageErrorf("--%s needs --tls (speak TLS to REMOTE): add --tls, or drop --%s", n, n)
			}
		}
		return nil, nil
	}
	if c.IsSet("reuse") {
		// A recycled upstream must be proven to hold no unread byte; the
		// pool can prove that of a socket it peeks at, not of a TLS stream
		// whose records crypto/tls may have buffered, so it never takes one
		// back. A pooled TLS upstream already spares each client the
		// handshake, which is most of what --reuse would save.
		return nil, usageErrorf("--reuse %s with --tls: a TLS upstream cannot be proven clean for another client, so it is never recycled; drop --reuse (the warm pool still spares each client the TLS handshake)", c.String("reuse"))
	}
	opts := tlsup.Options{ServerName: c.String("tls-server-name"), CAFile: c.String("tls-ca"),
		CertFile: c.String("tls-cert"), KeyFile: c.String("tls-key"), Insecure: c.Bool("tls-insecure")}
	t := &tlsUpstream{targets: map[string]tlsTarget{}, warning: opts.Warning()}
	for _, cand := range strings.Split(remote, ",") { // failover candidates, each checked
		target := tlsTarget{network: "tcp", addr: cand}
		host := ""
		if path, ok := strings.CutPrefix(cand, "unix:"); ok {
			target.network, target.addr = "unix", path
		} else if h, _, err := net.SplitHostPort(cand); err == nil {
			host = h
		}
		cfg, err := opts.Config(host)
		if err != nil {
			return nil, usageErrorf("%s", oneLine(err.Error()))
		}
		target.cfg = cfg
		t.targets[cand] = target
	}
	return t, nil
}

// tlsWarning is the line to print once for c's TLS flags, or "".
func tlsWarning(c *cli.Context) string {
	if !c.Bool("tls") {
		return ""
	}
	return tlsup.Options{Insecure: c.Bool("tls-insecure")}.Warning()
}

// dial opens the socket to remote (REMOTE or one of its candidates) and
// makes the handshake, both within ctx (the dial timeout). A failed
// handshake's error reads as Describe's line, in the warning and in the
// client's record.
func (t *tlsUpstream) dial(ctx context.Context, remote string) (*tlsup.Conn, error) {
	target, ok := t.targets[remote]
	if !ok {
		return nil, fmt.Errorf("no TLS settings for %s", remote) // forward dials only the candidates it was given
	}
	var d net.Dialer
	d.KeepAlive = keepAliveFor(target.network, target.addr)
	raw, err := d.DialContext(ctx, target.network, target.addr)
	if err != nil {
		return nil, err
	}
	c, err := tlsup.Dial(ctx, raw, target.cfg)
	if err != nil {
		return nil, tlsDialError{err}
	}
	return c, nil
}

// keepAliveFor: no TCP keepalive to loopback, where no peer can vanish
// without the kernel saying so (forward's own dialer does the same); Go's
// default elsewhere.
func keepAliveFor(network, addr string) time.Duration {
	if network != "tcp" {
		return 0
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return -1
	}
	return 0
}

// tlsDialError is a failed handshake, read in words a user can act on.
type tlsDialError struct{ err error }

func (e tlsDialError) Error() string { return tlsup.Describe(e.err) }
func (e tlsDialError) Unwrap() error { return e.err }

// apply makes cfg's forwarder reach REMOTE through t: a Stream the pool
// probes through tlsup.Conn's Probe and the copier relays.
func (t *tlsUpstream) apply(cfg *forward.Config) {
	cfg.DialStream = func(ctx context.Context, remote string) (forward.Stream, error) {
		c, err := t.dial(ctx, remote)
		if err != nil {
			return nil, err // not a typed nil
		}
		return c, nil
	}
}
