//go:build !unix || aix

package pool

// closeUnused closes an idle connection the pool lets go unused. Here there
// is no raw non-blocking read to empty its receive queue first, so a server
// that greeted it may see a reset.
func closeUnused(c interface{ Close() error }) { c.Close() }
