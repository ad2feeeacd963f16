//go:build unix

package forward

import (
	"errors"
	"syscall"
)

// processExists is kill(pid, 0): no error, or EPERM (someone else's), means
// a process has that pid.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
