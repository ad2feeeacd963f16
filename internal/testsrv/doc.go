// Package testsrv is what tests start to have something real to talk to: a
// tracked in-process server on 127.0.0.1 or a Unix socket (Server), a real
// server process waited on by its ready line (Proc), HAProxy in front of a
// PROXY-protocol backend (HAProxy), and a stand-in for systemd's socket
// activation (StandIn). It is for tests and test helper packages only, as
// net/http/httptest is; TestNotShipped keeps it out of the binary.
//
// Every wait is bounded (Timeout); a missing binary fails the test naming
// the Debian package that has it (Need), since CI installs them.
package testsrv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Timeout bounds every wait in this package: generous, for a loaded 2-core
// machine under -race. It is no claim about speed.
const Timeout = 30 * time.Second

// Need returns the path of the program bin, failing the test with the
// Debian package to install when it is missing. Daemons are looked for in
// /usr/sbin too, which is not on every PATH.
func Need(t testing.TB, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/lib/systemd"} {
		if p := filepath.Join(d, bin); isExec(p) {
			return p
		}
	}
	t.Fatalf("%s not found: install the Debian package %s", bin, pkg)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// FreePort is a port on 127.0.0.1 that nothing listened on a moment ago.
// Another process may take it before the caller binds it: a server that
// reports the address in use is started again on another (see Start).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
