//go:build linux && !wpgoroutines

package forward

// UnixSockets says whether LOCAL and REMOTE may be unix:PATH in this build.
const UnixSockets = true
