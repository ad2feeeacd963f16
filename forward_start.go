package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// dialWatch hears the warm pool's background dials. It warns once per
// distinct error, the moment it happens, so a REMOTE that cannot resolve or
// refuses shows before the first client does; retries that fail the same
// way stay quiet. With require set it warns of nothing and hands the first
// result to first instead, for --require-remote.
type dialWatch struct {
	remote string
	warn   func(format string, a ...any)
	first  chan error // the first dial's result; buffered, written once

	mu      sync.Mutex
	seen    map[string]bool
	decided bool
	require bool
	ready   bool     // the ready line is out: warn at once
	held    []string // warnings that came before the ready line
}

func newDialWatch(remote string, require bool, warn func(string, ...any)) *dialWatch {
	return &dialWatch{remote: remote, warn: warn, require: require, first: make(chan error, 1), seen: map[string]bool{}}
}

// report is the pool's OnDial: called outside the pool's lock, from its
// dialing goroutine.
func (d *dialWatch) report(err error) {
	d.mu.Lock()
	first := !d.decided
	d.decided = true
	quiet := d.require && first
	fresh := err != nil && !d.seen[err.Error()]
	if fresh {
		d.seen[err.Error()] = true
	}
	d.mu.Unlock()
	if first {
		d.first <- err
	}
	if !fresh || quiet {
		return
	}
	msg := fmt.Sprintf("warmport: warning: cannot reach %s: %s; forwarding anyway, clients are closed until it answers (--require-remote exits instead)\n",
		d.remote, oneLine(err.Error()))
	d.mu.Lock()
	if !d.ready {
		d.held = append(d.held, msg)
		msg = ""
	}
	d.mu.Unlock()
	if msg != "" {
		d.warn("%s", msg)
	}
}

// readyLine prints the ready line, then the warnings that came before it:
// the ready line is always the first a user (or a script) reads.
func (d *dialWatch) readyLine(write func(string, ...any), format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	write(format, a...)
	for _, msg := range d.held {
		d.warn("%s", msg)
	}
	d.ready, d.held = true, nil
}

// openJSONFile creates --json-file's PATH at start, so a path that cannot be
// written fails before anything listens, not after the session.
func openJSONFile(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, usageErrorf("--json-file: %s; name a file in a directory you can write", oneLine(err.Error()))
	}
	return f, nil
}

// dropJSONFile removes --json-file's file when no session came to write it
// (LOCAL could not be listened on, --require-remote failed): an empty file
// must not look like a summary.
func dropJSONFile(f *os.File) {
	if f != nil {
		f.Close()
		os.Remove(f.Name())
	}
}

// writeJSONFile writes the summary to --json-file's file and closes it.
func writeJSONFile(f *os.File, sum any) error {
	if f == nil {
		return nil
	}
	err := json.NewEncoder(f).Encode(sum)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return runtimeErrorf("write the JSON summary to %s: %v", f.Name(), err)
	}
	return nil
}
