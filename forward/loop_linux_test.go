//go:build linux && !wpgoroutines

package forward

// engineTestSetup: the event loop has no test knobs.
func engineTestSetup() {}
