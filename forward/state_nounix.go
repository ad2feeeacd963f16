//go:build !unix

package forward

import "os"

// processExists asks the OS for a handle on pid (Windows opens the process).
func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}
