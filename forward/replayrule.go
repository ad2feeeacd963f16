package forward

import "time"

// The replay rule: when may a failed pooled upstream be replaced by a fresh
// dial that gets the client's first bytes again?
//
// A pooled upstream (warm or reused) that fails while the replay window is
// open (it has not sent a byte yet; the client's first bytes are kept) is
// replaced once, and the kept bytes replayed, only when it is certain that
// it did not consume them. A request must never be delivered twice:
//
//  1. Nothing was written to it: it failed (EOF or reset) before it had any
//     of the client's bytes. Replay.
//  2. Bytes were written, and the kernel shows its socket was gone when they
//     arrived: our socket was reset (TCP state CLOSE: a write's EPIPE or
//     ECONNRESET, a read's ECONNRESET, or the reset that follows the FIN of
//     a server closing an idle connection just as the client came), and
//     none of the bytes written was acknowledged (SIOCOUTQ still holds them
//     all). A peer's kernel acknowledges what it receives before its
//     application can read a byte, and a closed socket answers data with a
//     reset, never an ACK: unacknowledged bytes were never read. Replay.
//  3. Anything else goes to the client exactly as a direct connection would
//     show it (EOF passed on, a reset as a reset): a clean EOF after the
//     bytes were acknowledged is a server that read them and closed (a sink;
//     PostgreSQL answering a CancelRequest), so a replay would deliver them
//     twice; a reset after they were acknowledged may come after the server
//     acted on them.
//
// A clean EOF with every byte still unacknowledged and no reset yet is
// undecided for a round trip: the reset (a closed server) or the ACK (a
// server that half-closed and still reads) is on its way. The rule waits for
// it up to replayVerdictWait; still undecided then, it is ambiguous: no
// replay. Where the kernel cannot tell (not Linux), only case 1 replays.

// replayVerdictWait bounds the wait for the kernel's verdict (case 3's
// undecided EOF); on loopback it comes within microseconds.
const replayVerdictWait = time.Second

// verdict is what the kernel says of a failed upstream's socket.
type verdict uint8

const (
	undecided  verdict = iota // EOF, nothing acknowledged, no reset yet
	unconsumed                // reset, nothing acknowledged: case 2
	consumed                  // acknowledged, or the kernel cannot tell: case 3
)

// replayable applies the rule to old, a pooled upstream that failed after
// written bytes of the client's were written to it. It may wait up to
// replayVerdictWait: never call it on the event loop.
func replayable(old *sock, written int) bool {
	return replayableFD(fdOf(old), written)
}

// replayableFD is replayable for the socket whose fd onFD lends.
func replayableFD(onFD func(func(fd int)), written int) bool {
	if written == 0 {
		return true
	}
	deadline := time.Now().Add(replayVerdictWait)
	slice := time.Millisecond
	for {
		v := consumed // a socket closed meanwhile (an abort) decides nothing
		onFD(func(fd int) {
			if v = kernelVerdict(fd, written); v == undecided {
				// A reset wakes the wait; an ACK does not, so look again
				// after a slice.
				waitReset(fd, min(slice, time.Until(deadline)))
			}
		})
		switch {
		case v != undecided:
			return v == unconsumed
		case !time.Now().Before(deadline):
			return false
		}
		slice = min(2*slice, 20*time.Millisecond)
	}
}
