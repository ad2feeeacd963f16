package testsrv

import "syscall"

// dieWithParent makes the server get SIGKILL when the test process dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
