//go:build !linux

package forward

import "time"

// kernelVerdict: without Linux's SIOCOUTQ and TCP_INFO nothing proves that
// written bytes were not consumed, so none is replayed (see replayrule.go).
func kernelVerdict(fd, written int) verdict { return consumed }

func waitReset(fd int, d time.Duration) {}

// closedByKernel: nothing tells here (see resetUnderEOF).
func closedByKernel(fd int) bool { return false }
