package sshvia

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// ciphers puts AES-GCM first: with AES-NI it moves more bytes per CPU
// second than chacha20-poly1305 through a real sshd (BenchmarkCipher).
var ciphers = []string{
	ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM,
	ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR,
}

// ErrDropped is wrapped by errors of channels and dials that failed because
// the SSH connection under them was lost; test with errors.Is.
var ErrDropped = errors.New("ssh connection lost")

// dropError says why a connection was lost.
type dropError struct{ reason error }

func (e *dropError) Error() string { return ErrDropped.Error() + ": " + e.reason.Error() }
func (e *dropError) Unwrap() []error {
	return []error{ErrDropped, e.reason}
}

// sshConn is one SSH connection (through its jump hosts) and what knows
// whether it is lost. A channel on it that reads EOF asks lost() before
// calling the EOF clean: x/crypto ends every channel with EOF on a drop.
type sshConn struct {
	client *ssh.Client
	under  []*ssh.Client // jump host clients, outermost first
	local  net.Addr
	w      *watchConn
	lost   atomic.Pointer[dropError]
	done   chan struct{} // closed when the connection has ended
	stop   chan struct{} // closed by close: ends the keepalive
	once   sync.Once

	// awaiting counts channels handed to a client (probed on borrow) that
	// have not read their first reply: a channel opened on this
	// connection now would make sshd send its open confirmation just
	// before that reply, which Nagle would then hold for a round trip.
	awaiting atomic.Int32
}

// quieter reports whether a new channel is better opened on c than on d:
// fewer channels awaiting their first reply, then the one written to
// longest ago, whose last packets sshd has most likely seen acknowledged.
func (c *sshConn) quieter(d *sshConn) bool {
	if a, b := c.awaiting.Load(), d.awaiting.Load(); a != b {
		return a < b
	}
	return c.w.wrote.Load() < d.w.wrote.Load()
}

// markLost records the first reason the connection ended.
func (c *sshConn) markLost(reason error) *dropError {
	c.lost.CompareAndSwap(nil, &dropError{reason: reason})
	return c.lost.Load()
}

// dropped returns the reason if the connection is lost, else nil.
func (c *sshConn) dropped() error {
	if e := c.lost.Load(); e != nil {
		return e
	}
	return nil
}

func (c *sshConn) close(reason error) {
	c.markLost(reason)
	c.once.Do(func() { close(c.stop) })
	c.client.Close()
	for i := len(c.under) - 1; i >= 0; i-- {
		c.under[i].Close()
	}
}

// watchConn is the transport under x/crypto's mux: its first read or write
// error is recorded as the drop before x/crypto sees it, so every channel's EOF that
// the drop causes finds the connection already marked lost.
type watchConn struct {
	net.Conn
	c        *sshConn
	read     atomic.Int64 // reads that returned bytes, for the keepalive
	wrote    atomic.Int64 // when the last write started, in monotonic ns (see sinceStart)
	quickAck func()       // see quickAck; nil where there is none
}

func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.read.Add(1)
		if w.quickAck != nil {
			w.quickAck()
		}
	}
	if err != nil {
		w.c.markLost(err)
	}
	return n, err
}

// Write marks the connection lost on a failed write too: a channel's Write
// that fails on it then reports the drop, not a bare socket error.
func (w *watchConn) Write(p []byte) (int, error) {
	w.wrote.Store(sinceStart())
	n, err := w.Conn.Write(p)
	if err != nil {
		w.c.markLost(err)
	}
	return n, err
}

// clockStart is the origin of sinceStart.
var clockStart = time.Now()

// sinceStart is a monotonic clock in nanoseconds, cheap to store atomically.
func sinceStart() int64 { return int64(time.Since(clockStart)) }

// dialer opens SSH connections for a Tunnel: the first one at Open, and the
// others and the ones that heal a drop from each connection's keeper.
type dialer struct {
	res     *resolver
	keys    *keyring
	target  *host
	timeout time.Duration

	mu    sync.Mutex       // guards jumps: keepers dial at the same time
	jumps map[string]*host // resolved once, so a redial spawns no ssh -G
}

// jumpHost resolves a ProxyJump hop.
func (d *dialer) jumpHost(ctx context.Context, spec string) (*host, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.jumps[spec]; ok {
		return h, nil
	}
	h, err := d.res.resolve(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("jump host %s: %v", spec, err)
	}
	if d.jumps == nil {
		d.jumps = map[string]*host{}
	}
	d.jumps[spec] = h
	return h, nil
}

// dial connects to h through its jump hosts. jumps overrides h's own
// ProxyJump, as `ssh -J` does for the hops after the first.
func (d *dialer) connect(ctx context.Context, h *host, jumps []string, depth int) (*sshConn, error) {
	if depth > maxJumps {
		return nil, fmt.Errorf("more than %d jump hosts (a ProxyJump loop?)", maxJumps)
	}
	if jumps == nil {
		jumps = h.jumps
	}
	c := &sshConn{done: make(chan struct{}), stop: make(chan struct{})}
	var raw net.Conn
	var err error
	if len(jumps) == 0 {
		var nd net.Dialer
		dctx, cancel := context.WithTimeout(ctx, d.timeout)
		raw, err = nd.DialContext(dctx, "tcp", h.addr())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ssh %s: %v", h, err)
		}
	} else {
		last := jumps[len(jumps)-1]
		jh, err := d.jumpHost(ctx, last)
		if err != nil {
			return nil, err
		}
		var rest []string
		if len(jumps) > 1 {
			rest = jumps[:len(jumps)-1]
		}
		jc, err := d.connect(ctx, jh, rest, depth+1)
		if err != nil {
			return nil, err
		}
		c.under = append(jc.under, jc.client)
		dctx, cancel := context.WithTimeout(ctx, d.timeout)
		raw, err = jc.client.DialContext(dctx, "tcp", h.addr())
		cancel()
		if err != nil {
			jc.close(err)
			return nil, fmt.Errorf("jump host %s: channel to %s: %v", jh, h.addr(), err)
		}
	}
	c.local = raw.LocalAddr()
	if err := d.handshake(ctx, c, raw, h); err != nil {
		for i := len(c.under) - 1; i >= 0; i-- {
			c.under[i].Close()
		}
		return nil, err
	}
	return c, nil
}

func (d *dialer) handshake(ctx context.Context, c *sshConn, raw net.Conn, h *host) error {
	hk, err := newHostKeys(d.knownHosts(h))
	if err != nil {
		raw.Close()
		return err
	}
	auth, at := d.keys.methods(h)
	defer at.close()
	cc := &ssh.ClientConfig{
		User:              h.user,
		Auth:              auth,
		HostKeyCallback:   hk.callback(h.addr()),
		HostKeyAlgorithms: hk.algorithms(h.addr()),
		Timeout:           d.timeout,
	}
	cc.Ciphers = ciphers
	if c := d.keys.cfg.ciphers; c != nil {
		cc.Ciphers = c
	}
	// The handshake takes no context: a timer or ctx closes the transport,
	// which works for TCP and for a jump host's channel alike. The timer
	// stops while a passphrase is asked: a person types slower than that.
	var expired atomic.Bool
	timer := time.AfterFunc(d.timeout, func() { expired.Store(true); raw.Close() })
	at.hold = func() (release func()) {
		if !timer.Stop() {
			return func() {}
		}
		return func() { timer.Reset(d.timeout) }
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	w := &watchConn{Conn: raw, c: c, quickAck: quickAck(raw)}
	c.w = w
	sc, chans, reqs, err := ssh.NewClientConn(w, h.addr(), cc)
	timer.Stop()
	if !stop() || expired.Load() {
		if sc != nil {
			sc.Close()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("handshake: %w", ctx.Err())
		} else {
			err = fmt.Errorf("handshake: no answer in %v", d.timeout)
		}
	}
	if err != nil {
		raw.Close()
		if hkErr := hostKeyError(err); hkErr != nil {
			return fmt.Errorf("ssh %s: %v", h, hkErr)
		}
		if isAuthError(err) {
			return fmt.Errorf("ssh %s: %v", h, at.explain(h.user, err))
		}
		return fmt.Errorf("ssh %s: %v", h, err)
	}
	c.client = ssh.NewClient(sc, chans, reqs)
	go func() {
		err := c.client.Wait()
		if err == nil {
			err = errors.New("closed by the server")
		}
		c.markLost(err)
		close(c.done)
	}()
	alive, aliveMax := h.alive, h.aliveMax
	if cfg := d.keys.cfg; cfg.alive > 0 {
		alive, aliveMax = cfg.alive, cfg.aliveMax
	}
	go c.keepalive(w, alive, aliveMax)
	return nil
}

func (d *dialer) knownHosts(h *host) []string {
	if d.keys.cfg.KnownHosts != "" {
		return []string{d.keys.cfg.KnownHosts}
	}
	return h.knownHosts
}

// hostKeyError digs our host key message out of x/crypto's handshake error.
func hostKeyError(err error) error {
	var he *hostKeyErr
	if errors.As(err, &he) {
		return he
	}
	return nil
}

func isAuthError(err error) bool {
	var se *ssh.ServerAuthError
	if errors.As(err, &se) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

// keepalive asks the server for a keepalive@openssh.com reply every
// interval in which nothing arrived, and closes the connection after
// countMax intervals in a row with no byte from the server, as ssh's
// ServerAliveInterval and ServerAliveCountMax do.
func (c *sshConn) keepalive(w *watchConn, interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var missed int
	var pending atomic.Bool
	last := w.read.Load()
	for {
		select {
		case <-c.stop:
			return
		case <-c.done:
			return
		case <-t.C:
		}
		if n := w.read.Load(); n != last {
			last, missed = n, 0
		} else {
			missed++
		}
		if missed >= countMax {
			c.close(fmt.Errorf("no answer to %d keepalives in %v", countMax, time.Duration(countMax)*interval))
			return
		}
		if pending.CompareAndSwap(false, true) {
			go func() {
				c.client.SendRequest("keepalive@openssh.com", true, nil)
				pending.Store(false)
			}()
		}
	}
}
