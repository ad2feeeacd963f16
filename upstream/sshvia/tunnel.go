package sshvia

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Back-off between redials after a drop: 1s doubling to 30s.
var (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// ErrClosed is returned by Dial after Close.
var ErrClosed = errors.New("sshvia: tunnel closed")

// Tunnel is one SSH connection that heals itself: after a drop it is
// redialed with back-off, and Dial waits for it meanwhile.
type Tunnel struct {
	d    *dialer
	logf func(string, ...any)

	mu    sync.Mutex
	cur   *sshConn      // nil while healing
	ready chan struct{} // closed when cur is set again

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open resolves cfg.Via, connects and authenticates, before the forwarder
// says it is ready. Its error is one line: the connect, the host key (with
// its fingerprint and how to accept it) or each auth method's failure.
func Open(ctx context.Context, cfg Config) (*Tunnel, error) {
	res, err := newResolver(&cfg)
	if err != nil {
		return nil, err
	}
	h, err := res.resolve(ctx, cfg.Via)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %v", cfg.Via, err)
	}
	d := &dialer{res: res, keys: &keyring{cfg: &cfg}, target: h, timeout: cfg.DialTimeout}
	if d.timeout <= 0 {
		d.timeout = defaultDialTimeout
	}
	for _, f := range cfg.Identities {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("identity %s: %v", f, unwrapPath(err))
		}
	}
	c, err := d.connect(ctx, h, nil, 0)
	if err != nil {
		return nil, err
	}
	t := &Tunnel{d: d, logf: cfg.Logf, cur: c, ready: make(chan struct{})}
	close(t.ready)
	if t.logf == nil {
		t.logf = func(string, ...any) {}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.heal(c)
	return t, nil
}

// String is user@host:port of the SSH server, for JSON "via".
func (t *Tunnel) String() string { return t.d.target.String() }

// Close ends the connection and the healing; channels on it fail.
func (t *Tunnel) Close() error {
	t.cancel()
	t.mu.Lock()
	c := t.cur
	t.mu.Unlock()
	if c != nil {
		c.close(ErrClosed)
	}
	t.wg.Wait()
	return nil
}

// heal watches the current connection; when it is lost it closes it (its
// channels then fail with the reason) and redials with back-off until it
// is back or the tunnel is closed.
func (t *Tunnel) heal(c *sshConn) {
	defer t.wg.Done()
	for {
		select {
		case <-c.done:
		case <-t.ctx.Done():
			return
		}
		reason := c.markLost(errors.New("ended")).reason
		c.close(reason)
		t.mu.Lock()
		t.unsetLocked(c)
		t.mu.Unlock()
		t.logf("ssh %s: connection lost (%v); reconnecting", t, reason)
		start := time.Now()
		wait, tries, lastErr := backoffMin, 0, ""
		if b := t.d.keys.cfg.backoff; b > 0 {
			wait = b
		}
		for {
			tries++
			nc, err := t.d.connect(t.ctx, t.d.target, nil, 0)
			if err == nil {
				c = nc
				break
			}
			if t.ctx.Err() != nil {
				return
			}
			// One line per distinct failure: a host key that changed while
			// the connection was down must not go unseen.
			if msg := err.Error(); msg != lastErr {
				t.logf("ssh %s: reconnect failed: %s", t, strings.TrimPrefix(msg, "ssh "+t.String()+": "))
				lastErr = msg
			}
			select {
			case <-time.After(wait):
			case <-t.ctx.Done():
				return
			}
			wait = min(2*wait, backoffMax)
		}
		t.mu.Lock()
		if t.ctx.Err() != nil { // Close has already looked at t.cur
			t.mu.Unlock()
			c.close(ErrClosed)
			return
		}
		t.cur = c
		close(t.ready)
		t.mu.Unlock()
		t.logf("ssh %s: reconnected after %.1fs (%d attempts)", t, time.Since(start).Seconds(), tries)
		if f := t.d.keys.cfg.OnReconnect; f != nil {
			f()
		}
	}
}

// current is the live connection, or nil and a channel closed when one is.
func (t *Tunnel) current() (*sshConn, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && t.cur.dropped() != nil {
		t.unsetLocked(t.cur)
	}
	return t.cur, t.ready
}

// unsetLocked makes Dial wait, once, for the connection after c.
func (t *Tunnel) unsetLocked(c *sshConn) {
	if t.cur == c {
		t.cur, t.ready = nil, make(chan struct{})
	}
}

// Dial opens a channel to addr, dialed by the SSH server: host:port
// (direct-tcpip) or unix:PATH (direct-streamlocal@openssh.com, a Unix
// socket on the server). While the connection heals it waits, up to ctx. A
// refused open is an *ssh.OpenChannelError with the server's reason.
func (t *Tunnel) Dial(ctx context.Context, addr string) (*Channel, error) {
	kind, msg, err := openMsg(addr)
	if err != nil {
		return nil, err
	}
	for {
		c, ready := t.current()
		if c == nil {
			select {
			case <-ready:
				continue
			case <-t.ctx.Done():
				return nil, ErrClosed
			case <-ctx.Done():
				return nil, fmt.Errorf("ssh %s: waiting for the connection to heal: %w", t, ctx.Err())
			}
		}
		ch, err := t.open(ctx, c, kind, msg)
		if err == nil {
			return newChannel(ch, c, addr), nil
		}
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) || ctx.Err() != nil || t.ctx.Err() != nil {
			return nil, fmt.Errorf("ssh %s: channel to %s: %w", t, addr, err)
		}
		// Any other failure is the connection's: wait for it to heal.
		c.close(err)
	}
}

// open is OpenChannel bounded by ctx; a channel that opens after ctx ended
// is closed.
func (t *Tunnel) open(ctx context.Context, c *sshConn, kind string, msg []byte) (ssh.Channel, error) {
	type result struct {
		ch  ssh.Channel
		err error
	}
	res := make(chan result, 1)
	go func() {
		ch, reqs, err := c.client.OpenChannel(kind, msg)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		res <- result{ch, err}
	}()
	select {
	case r := <-res:
		return r.ch, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.ch != nil {
				r.ch.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// openMsg is the channel type and open request for addr (RFC 4254 7.2;
// OpenSSH's PROTOCOL 2.4 for Unix sockets).
func openMsg(addr string) (kind string, msg []byte, err error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "direct-streamlocal@openssh.com", ssh.Marshal(&struct {
			Path      string
			Reserved0 string
			Reserved1 uint32
		}{Path: path}), nil
	}
	hst, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", nil, fmt.Errorf("bad port in %q", addr)
	}
	return "direct-tcpip", ssh.Marshal(&struct {
		Host  string
		Port  uint32
		OHost string
		OPort uint32
	}{hst, uint32(port), "127.0.0.1", 0}), nil
}
