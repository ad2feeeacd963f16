package forward

import "sync"

// registry is the one set of live pairs: each pair is in it from start
// (right after accept) to record, found by its id. Shutdown aborts what is
// in it, Active counts it, ExitIdle waits for it to be empty, and an event
// loop finds there the pair an epoll event or a post names. It is the
// Forwarder's, not a loop's, because a pair is live before a loop relays it
// (while its upstream is dialed) and after (while it is recorded), and the
// copier's pairs are on no loop. It is sharded, one shard per event loop and
// one for the others, so a loop's dispatch takes only its own shard's lock,
// never one that every accept and record on every loop takes too.
type registry struct {
	shards []*shard // [0]: pairs on no loop; the loops' own follow (startNative)
}

type shard struct {
	mu    sync.Mutex
	pairs map[uint64]*pair
}

func newShard() *shard { return &shard{pairs: make(map[uint64]*pair)} }

// shardOf is where p is held: its event loop's shard, else the first. p's
// engine is set (engineFor).
func (r *registry) shardOf(p *pair) *shard {
	if l, ok := p.engine.(interface{ pairs() *shard }); ok {
		return l.pairs()
	}
	return r.shards[0]
}

// register puts p in its shard.
func (r *registry) register(p *pair) {
	s := r.shardOf(p)
	s.mu.Lock()
	s.pairs[p.id] = p
	s.mu.Unlock()
}

// unregister takes p out once it is recorded.
func (r *registry) unregister(p *pair) {
	s := r.shardOf(p)
	s.mu.Lock()
	delete(s.pairs, p.id)
	s.mu.Unlock()
}

// len is how many pairs are live.
func (r *registry) len() int {
	n := 0
	for _, s := range r.shards {
		s.mu.Lock()
		n += len(s.pairs)
		s.mu.Unlock()
	}
	return n
}

// all returns the live pairs.
func (r *registry) all() []*pair {
	var ps []*pair
	for _, s := range r.shards {
		s.mu.Lock()
		for _, p := range s.pairs {
			ps = append(ps, p)
		}
		s.mu.Unlock()
	}
	return ps
}
