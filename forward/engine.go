package forward

// The relay engines. A pair's life (accept, admission, borrow, record) is
// the Forwarder's; how its bytes move is an engine's, behind this one seam.
// Two engines implement it:
//
//   - the event loop (loop_linux.go, loop_pair_linux.go): Linux, both ends
//     file descriptors. Every socket sits in an epoll set from the pair's
//     start to its end; bytes go socket -> pipe -> socket by splice(2), and
//     an idle pair costs its two sockets and its struct, no goroutine.
//   - the copier (copier.go, copier_replay.go): a goroutine per direction
//     over net.Conn, reading, writing and passing EOF on as CloseWrite. The
//     same code on every OS: what macOS and Windows ship, and the engine for
//     upstreams that are streams rather than sockets (TLS, SSH channels).
//
// What both share, written once in pair.go, replayrule.go and reuse.go: the
// pair's state and its decisions (may the upstream be replaced: shouldRedial
// and the replay rule; may it be recycled: mayRecycle and recyclable; how the
// pair ended: clientEnded, upstreamEnded, cleanEnd, abort, outcome), the byte
// counters (count), the idle timer, the abort (a reset to both peers), and
// the one release -> record path (Forwarder.endPair: release, then record).
// What stays each engine's own is how it waits and who runs a step: the loop is one goroutine that must never block,
// so it hands the replay rule, a redial and the protocol's reset to other
// goroutines and takes their outcome as a posted event; the copier blocks in
// Read and Write, so the same steps run inline in its direction goroutines,
// and a recycle stops the upstream's reader with an expired read deadline.

// engine moves one pair's bytes both ways until both directions have ended.
type engine interface {
	// relay moves p's bytes; p.client and p.upstream are set. When both
	// directions have ended (cleanly, or after p.abort) the engine calls
	// p.f.endPair(p) exactly once (or its halves, release then record),
	// from whichever goroutine saw the end.
	relay(p *pair)
	// inline: relay only registers p and returns at once, so the accept
	// loop may call it; otherwise relay runs p in the calling goroutine
	// until it ends, and the Forwarder calls it from p's own goroutine.
	inline() bool
	// wake makes the engine see p's abort at once: p.abort has reset both
	// sockets and made its reason final.
	wake(p *pair)
	// detach takes p's upstream out of the engine before endPair offers it
	// to the pool for another client.
	detach(p *pair)
}

// testEngine, if set, picks the engine for every pair instead of the rule
// (engineFor): "loop" or "copier". Tests set it; the end-to-end tests build
// the binary with -ldflags "-X github.com/warmport/warmport/forward.testEngine=copier".
// It is a variable, not a build tag, so what ships and what is tested is one
// program.
var testEngine string
