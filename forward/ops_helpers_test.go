package forward

import "context"

// dialUpstream dials Config.Remote, a single candidate, as a socket of
// ours: the dialer's tests call it directly.
func (f *Forwarder) dialUpstream(ctx context.Context) (*sock, error) {
	return f.dialRemote(ctx, f.cfg.Remote)
}
