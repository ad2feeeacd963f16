package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// exitHooks undo what the benchmark set up (child processes, namespaces).
// They run once, in reverse order, on a normal exit, on SIGINT/SIGTERM and
// when any goroutine panics.
var exitHooks struct {
	sync.Mutex
	fns  []func()
	ran  bool
	done chan struct{} // closed when the run has finished
}

// atExit registers fn to run when the benchmark exits, however it exits.
func atExit(fn func()) {
	exitHooks.Lock()
	defer exitHooks.Unlock()
	exitHooks.fns = append(exitHooks.fns, fn)
}

// runExitHooks runs the registered hooks once, newest first. A later call
// waits (bounded, in case it comes from inside a hook) until that run is
// over, so that nobody exits the process while a cleanup is half done.
func runExitHooks() {
	exitHooks.Lock()
	if exitHooks.ran {
		done := exitHooks.done
		exitHooks.Unlock()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		return
	}
	exitHooks.ran = true
	exitHooks.done = make(chan struct{})
	fns := exitHooks.fns
	exitHooks.Unlock()
	defer close(exitHooks.done)
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// crashed is deferred at the top of every goroutine the benchmark starts: a
// panic anywhere cleans up (kills children, deletes namespaces) before the
// process dies, which an unrecovered panic in a goroutine would not do.
func crashed() {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "peerbench: panic: %v\n%s", r, debug.Stack())
		runExitHooks()
		os.Exit(2)
	}
}

// goSafe runs fn in a new goroutine guarded by crashed.
func goSafe(fn func()) {
	go func() {
		defer crashed()
		fn()
	}()
}
