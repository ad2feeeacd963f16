package sshvia

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
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

// defaultConns is how many SSH connections a Tunnel keeps to its server
// when Config.Conns is 0: one, as ssh keeps, and as warmport's contract
// promises the bastion (one login per forwarder).
//
// More connections are for clients that come back to back over a slow
// link. sshd turns Nagle's algorithm off (TCP_NODELAY) only for a session
// that runs a command, so on a connection that only forwards, a short reply
// to a client waits for the acknowledgement of any short packet sshd sent in
// the round trip before it: the open confirmation of the pool's refill, the
// close of the previous client's channel. Clients that come one after
// another on one connection then pay two round trips, not one. With several
// connections, a new channel is opened on the one quiet longest (see
// sshConn.quieter), so the control packets of one client's channel land on a
// connection no client is waiting on. Four is the fewest that kept
// back-to-back clients at one round trip in the peer bench (three leaves a
// refill's confirmation a fraction of a millisecond ahead of the next
// client). To a nearby server (see defaultSpreadRTT) new channels stay on
// one of them. A forwarding-only connection costs the server a process and
// no session (MaxSessions counts none), and each is a login.
const defaultConns = 1

// localAddrRE is the local address in a socket error ("read tcp
// 127.0.0.1:41522->10.0.0.5:22: ..."), which differs between tries.
var localAddrRE = regexp.MustCompile(`\S+->`)

// failureKey is what makes two failures to connect the same to the user:
// the message without the local address.
func failureKey(msg string) string { return localAddrRE.ReplaceAllString(msg, "") }

// ErrClosed is returned by Dial after Close.
var ErrClosed = errors.New("sshvia: tunnel closed")

// Tunnel is a few SSH connections to one server that heal themselves: a
// dropped one is redialed with back-off, and Dial uses the others or waits
// meanwhile. To the user it is one path: one line when it is lost, one
// when it is back.
type Tunnel struct {
	d           *dialer
	logf        func(string, ...any)
	onReconnect func()

	mu       sync.Mutex
	conns    []*sshConn       // one per keeper; nil while it (re)connects
	ready    chan struct{}    // closed, and replaced, when a keeper connects
	rtt      [2]time.Duration // the smallest channel open time in this rttWindow and the one before; 0 none
	rttAt    time.Time        // when this rttWindow began
	spread   time.Duration    // the round trip from which new channels are spread
	down     bool             // a connection was lost, and fewer are up than when it was
	since    time.Time        // when down began
	want     int              // connections up when down began
	leader   int              // the keeper that redials while none is up; -1 none
	rewarmed bool             // OnReconnect was called since down began
	said     map[string]bool  // redial failures logged since down began

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open resolves cfg.Via, connects and authenticates, before the forwarder
// says it is ready. Its error is one line: the connect, the host key (with
// its fingerprint and how to accept it) or each auth method's failure. The
// tunnel's other connections follow in the background.
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
	n := cfg.Conns
	if n <= 0 {
		n = defaultConns
	}
	t := &Tunnel{d: d, logf: cfg.Logf, onReconnect: cfg.OnReconnect, conns: make([]*sshConn, n), ready: make(chan struct{}), leader: -1,
		spread: cfg.spreadRTT}
	if t.spread <= 0 {
		t.spread = defaultSpreadRTT
	}
	t.conns[0] = c
	if t.logf == nil {
		t.logf = func(string, ...any) {}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(n)
	go t.keep(0, c)
	for i := 1; i < n; i++ {
		go t.keep(i, nil)
	}
	return t, nil
}

// String is user@host:port of the SSH server, for JSON "via".
func (t *Tunnel) String() string { return t.d.target.String() }

// Close ends the connections and their keepers; channels on them fail.
func (t *Tunnel) Close() error {
	t.cancel()
	t.mu.Lock()
	conns := slices.Clone(t.conns)
	t.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.close(ErrClosed)
		}
	}
	t.wg.Wait()
	return nil
}

// keep is keeper i: it connects (when c is nil), watches the connection,
// and when it is lost closes it (its channels then fail with the reason)
// and connects again with back-off, until the tunnel is closed.
func (t *Tunnel) keep(i int, c *sshConn) {
	defer t.wg.Done()
	for {
		if c == nil {
			if c = t.connect(i); c == nil {
				return
			}
		}
		select {
		case <-c.done:
		case <-t.ctx.Done():
			return
		}
		reason := c.markLost(errors.New("ended")).reason
		c.close(reason)
		t.mu.Lock()
		t.conns[i] = nil
		first := !t.down
		if first {
			t.down, t.since, t.rewarmed, t.said = true, time.Now(), false, map[string]bool{}
			t.want = t.liveLocked() + 1
		}
		t.mu.Unlock()
		if first {
			t.logf("ssh %s: connection lost (%v); reconnecting", t, reason)
		}
		c = nil
	}
}

// connect dials keeper i's connection with back-off until it succeeds
// (then it is in use, and a recovery is told once) or the tunnel is closed
// (nil).
func (t *Tunnel) connect(i int) *sshConn {
	wait, tries := backoffMin, 0
	if b := t.d.keys.cfg.backoff; b > 0 {
		wait = b
	}
	var c *sshConn
	for {
		if !t.turn(i) {
			return nil
		}
		tries++
		var err error
		if c, err = t.d.connect(t.ctx, t.d.target, nil, 0); err == nil {
			break
		}
		if t.ctx.Err() != nil {
			return nil
		}
		// One line per distinct failure: a host key that changed while
		// the server was down must not go unseen, and several keepers
		// failing alike must not repeat it.
		msg := strings.TrimPrefix(err.Error(), "ssh "+t.String()+": ")
		key := failureKey(msg)
		t.mu.Lock()
		say, down := !t.said[key], t.down
		if t.said == nil {
			t.said = map[string]bool{}
		}
		t.said[key] = true
		t.mu.Unlock()
		switch {
		case say && down:
			t.logf("ssh %s: reconnect failed: %s", t, msg)
		case say:
			t.logf("ssh %s: another connection failed: %s; the others carry on", t, msg)
		}
		select {
		case <-time.After(wait):
		case <-t.ctx.Done():
			return nil
		}
		wait = min(2*wait, backoffMax)
	}
	t.mu.Lock()
	if t.ctx.Err() != nil { // Close has already looked at t.conns
		t.mu.Unlock()
		c.close(ErrClosed)
		return nil
	}
	t.conns[i] = c
	close(t.ready)
	t.ready = make(chan struct{})
	if t.leader == i {
		t.leader = -1
	}
	// The pool is told at the first keeper back, so it refills at once;
	// the user when as many connections are up as when the loss began, so
	// a drop of all of them (a restarted sshd) is one line each way however
	// their redials interleave, and a server that takes fewer connections
	// than we keep still reads as healed.
	rewarm := t.down && !t.rewarmed
	t.rewarmed = t.rewarmed || rewarm
	healed := t.down && t.liveLocked() >= t.want
	since := t.since
	if healed {
		t.down, t.rewarmed = false, false
	}
	t.mu.Unlock()
	if rewarm && t.onReconnect != nil {
		t.onReconnect()
	}
	if healed {
		t.logf("ssh %s: reconnected after %.1fs (%d attempts)", t, time.Since(since).Seconds(), tries)
	}
	return c
}

// turn waits until keeper i may dial, and says false if the tunnel was
// closed meanwhile. While no connection is up, one keeper (the leader)
// redials and the others wait for it: one login, not four at once, brings
// the tunnel back, and a restarted server is not met by a crowd.
func (t *Tunnel) turn(i int) bool {
	for {
		t.mu.Lock()
		live := slices.ContainsFunc(t.conns, func(c *sshConn) bool { return c != nil && c.dropped() == nil })
		if live || t.leader < 0 || t.leader == i {
			if !live {
				t.leader = i
			}
			t.mu.Unlock()
			return true
		}
		ready := t.ready
		t.mu.Unlock()
		if f := t.d.keys.cfg.parked; f != nil {
			f()
		}
		select {
		case <-ready:
		case <-t.ctx.Done():
			return false
		}
	}
}

// liveLocked counts the keepers that have a connection.
func (t *Tunnel) liveLocked() int {
	n := 0
	for _, c := range t.conns {
		if c != nil {
			n++
		}
	}
	return n
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
		c, ready := t.pick()
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
		start := time.Now()
		ch, reqs, err := c.client.OpenChannel(kind, msg)
		if err == nil {
			t.tookRTT(time.Since(start))
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
