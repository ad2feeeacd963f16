package forward

// Rewarm tells the forwarder that the path to its upstream is back (its SSH
// connection healed): the pool drops the idle upstreams that died with the
// old path and dials warm ones again at once, rather than at the next client.
func (f *Forwarder) Rewarm() { f.pool.Rewarm() }
