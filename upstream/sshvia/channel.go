package sshvia

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxGreeting bounds what an idle channel's watcher reads ahead: past it the
// SSH window holds the target back until the client reads.
const maxGreeting = 64 << 10

// Channel is one direct-tcpip channel: a net.Conn without deadlines (SSH
// channels have none), with CloseWrite (channel EOF), Abort and Probe.
//
// Until its first Read, a watcher goroutine reads the channel, so an idle
// channel learns of its target's EOF or the connection's drop as it happens
// and keeps a greeting (an SSH or MySQL banner) for the client. Read hands
// out the watcher's bytes first, exactly once, then reads the channel
// directly. Cost: one goroutine (a few KiB of stack) and a 2 KiB buffer per
// idle channel, gone at the first Read.
type Channel struct {
	ch     ssh.Channel
	conn   *sshConn
	target string

	mu      sync.Mutex
	pending []byte        // read by the watcher, not yet by Read
	werr    error         // what ended the watcher's reading, if it read one
	claimed bool          // Read was called: the watcher stops after its read
	wdone   chan struct{} // closed when the watcher has stopped
	first   chan struct{} // closed at the watcher's first bytes or error
	eofSent bool

	reply atomic.Int32 // awaitNone, awaitFirst (counted in conn.awaiting), awaitDone
}

const (
	awaitNone  = iota // not handed to a client yet
	awaitFirst        // handed out (probed alive), its first reply not read
	awaitDone         // replied, failed or closed
)

// await counts k in its connection's channels awaiting a first reply.
func (k *Channel) await() {
	if k.reply.CompareAndSwap(awaitNone, awaitFirst) {
		k.conn.awaiting.Add(1)
	}
}

// replied ends k's wait for its first reply, for good.
func (k *Channel) replied() {
	if k.reply.Load() == awaitDone {
		return
	}
	if k.reply.Swap(awaitDone) == awaitFirst {
		k.conn.awaiting.Add(-1)
	}
}

func newChannel(ch ssh.Channel, c *sshConn, target string) *Channel {
	k := &Channel{ch: ch, conn: c, target: target, wdone: make(chan struct{}), first: make(chan struct{})}
	go k.watch()
	return k
}

func (k *Channel) watch() {
	defer close(k.wdone)
	buf := make([]byte, 2048)
	for i := 0; ; i++ {
		n, err := k.ch.Read(buf)
		k.mu.Lock()
		k.pending = append(k.pending, buf[:n]...)
		if err != nil {
			k.werr = k.readErr(err)
		}
		stop := err != nil || k.claimed || len(k.pending) >= maxGreeting
		k.mu.Unlock()
		if i == 0 {
			close(k.first)
		}
		if stop {
			return
		}
	}
}

// readErr tells the target's EOF from a drop: x/crypto ends every channel
// of a lost connection with io.EOF, and the connection is marked lost
// before that happens (see watchConn).
func (k *Channel) readErr(err error) error {
	if err == io.EOF {
		if d := k.conn.dropped(); d != nil {
			return d
		}
	}
	return err
}

// Probe says whether the idle channel can be handed to a client, without
// blocking: nil means alive (any greeting stays for Read). An EOF or close
// from the target, or a lost connection, is dead; so is a greeting followed
// by the target's EOF. Call it only before the first Read.
//
// The pool probes on borrow, so a channel that passes is taken to be
// awaiting its first reply until Read returns one: new channels go to
// other connections meanwhile (see sshConn.awaiting).
func (k *Channel) Probe() error {
	k.mu.Lock()
	werr := k.werr
	k.mu.Unlock()
	if werr == nil {
		werr = k.conn.dropped()
	}
	if werr == nil {
		k.await()
	}
	return werr
}

// Greeting is how many bytes the target sent before the first Read, which
// Read hands out first.
func (k *Channel) Greeting() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pending)
}

// Read returns the watcher's bytes first, then reads the channel. The
// target's EOF is io.EOF; a lost connection is an error wrapping ErrDropped.
func (k *Channel) Read(p []byte) (int, error) {
	n, err := k.read(p)
	if n > 0 || err != nil {
		k.replied()
	}
	return n, err
}

func (k *Channel) read(p []byte) (int, error) {
	k.mu.Lock()
	if !k.claimed {
		k.claimed = true
	}
	if len(k.pending) > 0 {
		n := copy(p, k.pending)
		k.pending = k.pending[n:]
		if len(k.pending) == 0 {
			k.pending = nil
		}
		k.mu.Unlock()
		return n, nil
	}
	k.mu.Unlock()
	<-k.wdone // the watcher's read in flight may still bring bytes
	k.mu.Lock()
	if len(k.pending) > 0 {
		k.mu.Unlock()
		return k.read(p)
	}
	werr := k.werr
	k.mu.Unlock()
	if werr != nil {
		return 0, werr
	}
	n, err := k.ch.Read(p)
	if err != nil {
		err = k.readErr(err)
	}
	return n, err
}

// Write sends p to the target; after a drop it fails wrapping ErrDropped.
func (k *Channel) Write(p []byte) (int, error) {
	n, err := k.ch.Write(p)
	if err != nil {
		if d := k.conn.dropped(); d != nil {
			err = d
		}
	}
	return n, err
}

// CloseWrite sends the channel's EOF: the target reads its end of stream
// while its replies still come back.
func (k *Channel) CloseWrite() error {
	k.mu.Lock()
	k.eofSent = true
	k.mu.Unlock()
	return k.ch.CloseWrite()
}

// Close sends EOF, if CloseWrite has not, then closes the channel.
func (k *Channel) Close() error {
	k.mu.Lock()
	sent := k.eofSent
	k.eofSent = true
	k.mu.Unlock()
	if !sent {
		k.ch.CloseWrite()
	}
	k.replied()
	return k.ch.Close()
}

// Abort closes the channel without sending EOF first. SSH has no reset:
// sshd closes its socket to the target, which sees the end of the stream
// without the EOF that marks it complete at the SSH level.
func (k *Channel) Abort() error {
	k.replied()
	return k.ch.Close()
}

// LocalAddr is the local end of the SSH connection's TCP socket.
func (k *Channel) LocalAddr() net.Addr { return k.conn.local }

// RemoteAddr is the target as the SSH server dials it.
func (k *Channel) RemoteAddr() net.Addr { return targetAddr(k.target) }

// SetDeadline and its siblings fail: x/crypto's channels have no deadlines.
// A relay times idle channels out with its own timer and Abort.
func (k *Channel) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (k *Channel) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (k *Channel) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }

// targetAddr is a channel's target, host:port as the SSH server resolves it.
type targetAddr string

func (a targetAddr) Network() string { return "ssh-direct-tcpip" }
func (a targetAddr) String() string  { return string(a) }

// IsDropped reports whether err came from losing the SSH connection (as
// opposed to the target's EOF or a refused channel).
func IsDropped(err error) bool { return errors.Is(err, ErrDropped) }

var _ net.Conn = (*Channel)(nil)
