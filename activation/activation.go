// Package activation takes the listening sockets systemd passes to a
// socket-activated service (LOCAL `systemd` or `systemd:NAME`), as a .socket
// unit or `systemd-socket-activate` pass them: LISTEN_FDS sockets from fd 3
// on, for the process LISTEN_PID names, named by LISTEN_FDNAMES.
//
// Reading the variables is github.com/coreos/go-systemd/v22/activation's
// Files: the protocol's reference for Go, kept, with no dependencies; it
// checks LISTEN_PID, marks the fds close-on-exec and unsets the variables
// so a child COMMAND inherits neither. This package adds what it leaves to
// its caller: a reason when nothing was passed, the choice by name, and
// taking each socket once.
package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
)

// Prefix is LOCAL's form for socket activation: "systemd" takes the first
// passed socket, "systemd:NAME" the one named NAME (FileDescriptorName= in
// the .socket unit, --fdname for systemd-socket-activate).
const Prefix = "systemd"

// ParseLocal reports whether LOCAL asks for a passed socket, and which.
func ParseLocal(local string) (name string, ok bool) {
	if local == Prefix {
		return "", true
	}
	if n, found := strings.CutPrefix(local, Prefix+":"); found && n != "" {
		return n, true
	}
	return "", false
}

// howTo ends every "nothing usable was passed" error.
const howTo = "start warmport from a .socket unit (see docs/systemd), or try: systemd-socket-activate -l PORT warmport forward systemd REMOTE"

// The process's passed sockets: read once (the variables are unset then),
// each handed out once.
var (
	mu     sync.Mutex
	read   bool
	passed []*os.File // nil once taken
)

// Listener returns the passed socket named name ("" for the first one not
// yet taken) as a listener: *net.TCPListener or *net.UnixListener. Closing
// it closes warmport's copy only: systemd keeps the socket, and the path of
// a Unix one, and queues new clients there until it starts warmport again.
func Listener(name string) (net.Listener, error) {
	mu.Lock()
	defer mu.Unlock()
	if !read {
		if err := check(os.Getenv, os.Getpid()); err != nil {
			return nil, err
		}
		passed = sdactivation.Files(true)
		read = true
	}
	f, err := takeLocked(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // FileListener made its own fd
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("passed socket %q (fd %d) is not a listening stream socket: %v; use ListenStream= and Accept=no in the .socket unit", f.Name(), f.Fd(), err)
	}
	return ln, nil
}

// check says why LISTEN_* pass nothing to this process, before Files
// (which would only say nil).
func check(getenv func(string) string, pid int) error {
	fds, lpid := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if fds == "" {
		return fmt.Errorf("LOCAL %s: no socket was passed (LISTEN_FDS is not set): %s", Prefix, howTo)
	}
	if n, err := strconv.Atoi(fds); err != nil || n < 1 {
		return fmt.Errorf("LOCAL %s: LISTEN_FDS=%q passes no socket: %s", Prefix, fds, howTo)
	}
	if p, err := strconv.Atoi(lpid); err != nil || p != pid {
		return fmt.Errorf("LOCAL %s: LISTEN_PID=%q is not this process (%d): the sockets were meant for another one; %s", Prefix, lpid, pid, howTo)
	}
	return nil
}

func takeLocked(name string) (*os.File, error) {
	var names []string
	for i, f := range passed {
		if f == nil {
			continue
		}
		if name == "" || f.Name() == name {
			passed[i] = nil
			return f, nil
		}
		names = append(names, f.Name())
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	if name == "" {
		return nil, fmt.Errorf("LOCAL %s: every passed socket is taken already: pass one more (ListenStream=) or name them", Prefix)
	}
	return nil, fmt.Errorf("LOCAL %s:%s: no passed socket is named %q (left: %s); name it with FileDescriptorName= in the .socket unit or --fdname for systemd-socket-activate",
		Prefix, name, name, strings.Join(names, ", "))
}
