package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
)

var forwardCommand = &cli.Command{
	Name:      "forward",
	Usage:     "listen on LOCAL and relay every connection to REMOTE",
	ArgsUsage: "LOCAL REMOTE [-- COMMAND [ARG...]]",
	Description: "LOCAL is PORT, :PORT, HOST:PORT, [IPv6]:PORT or unix:PATH; a bare port binds 127.0.0.1 and 0 picks a free port.\n" +
		"REMOTE is HOST:PORT, [IPv6]:PORT, a bare PORT on 127.0.0.1, or unix:PATH. Flags go before LOCAL REMOTE.\n" +
		"With -- COMMAND, warmport runs COMMAND with WARMPORT_ADDR and WARMPORT_PORT set and exits with its status.",
	// Flags: forwardFlags, in forward_flags.go.
	OnUsageError: onUsageError,
	Action:       forwardAction,
}

func forwardAction(c *cli.Context) error {
	fa, err := parseForwardArgs(c.Args().Slice(), typedFlags(c))
	if err != nil {
		return err
	}
	cfg, err := forwardConfig(c, fa)
	if err != nil {
		return err
	}
	jsonFile, err := openJSONFile(c.String("json-file"))
	if err != nil {
		return err
	}
	stderr := newProgressWriter(c.App.ErrWriter)
	out := newLineQueue(stderr) // See output.go
	if !c.Bool("quiet") {
		cfg.OnClose = func(r forward.Record) { out.record(formatRecord(r) + "\n") }
	}
	dials := newDialWatch(fa.remote, c.Bool("require-remote"), out.printf)
	cfg.Pool.OnDial = dials.report
	fw, err := forward.New(cfg)
	if err != nil {
		dropJSONFile(jsonFile)
		return listenError(fa.local, err)
	}
	if c.Bool("require-remote") {
		if err := requireRemote(c, fw, dials, fa.remote); err != nil {
			dropJSONFile(jsonFile)
			return err
		}
	}
	dials.readyLine(out.writeNow, "warmport: forwarding %s -> %s\n", fw.Addr(), fa.remote)
	state := startStateRecorder(c.String("state-dir"), forwarderSnapshot(fw, fa.remote), out.printf) // See cmd_stats.go
	defer state.close()

	sigs := signalsFrom(c.Context)
	stopCtx, killCtx := sigs.stopCtx, sigs.killCtx
	var child *childProc
	if len(fa.command) > 0 {
		// COMMAND owns the terminal: Ctrl-C reaches it directly and is its
		// to handle; SIGTERM is passed on. Its exit ends the session.
		port := "" // none for a Unix socket
		if a, ok := fw.Addr().(*net.TCPAddr); ok {
			port = strconv.Itoa(a.Port)
		}
		child, err = startChild(fa.command, fw.Addr().String(), port, c.App.Writer, c.App.ErrWriter)
		if err != nil {
			fw.Shutdown(context.Background())
			dropJSONFile(jsonFile)
			return err
		}
		childDone, stopServe := context.WithCancel(context.Background())
		defer stopServe()
		kill, killChild := context.WithCancel(context.Background())
		defer killChild()
		stopCtx, killCtx = childDone, kill
		go child.supervise(sigs.relay, stopServe, killChild)
	}

	serveErr := fw.Serve(stopCtx)
	if errors.Is(serveErr, forward.ErrIdle) {
		out.printf("warmport: no connection for %s, exiting\n", cfg.ExitIdle)
		serveErr = nil
		if child != nil {
			child.terminate()
		}
	}
	status := 0
	if child != nil {
		status = child.wait()
	}
	drainCtx, cancel := context.WithTimeout(killCtx, c.Duration("drain-timeout"))
	defer cancel()
	sum := fw.Shutdown(drainCtx)
	// What matters most first: a stalled terminal may block what follows.
	state.save(sum)
	state.close()
	var outErr error
	if c.Bool("json") {
		if err := json.NewEncoder(c.App.Writer).Encode(sum); err != nil {
			outErr = runtimeErrorf("write the JSON summary: %v", err)
		}
	}
	if err := writeJSONFile(jsonFile, sum); err != nil && outErr == nil {
		outErr = err
	}
	interrupted := sigs.stopCtx.Err() != nil && isTerminal(c.App.ErrWriter)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		dropped := out.close()
		if interrupted {
			fmt.Fprintln(stderr) // the terminal echoed ^C where the cursor was
		}
		writeSummary(stderr, sum, time.Local)
		if dropped > 0 {
			fmt.Fprintf(stderr, "  %s\n", dim(fmt.Sprintf("(%d lines dropped: stderr did not keep up)", dropped)))
		}
	}()
	stderr.wait(printed, killCtx)
	if outErr != nil {
		return outErr
	}
	if serveErr != nil {
		return runtimeErrorf("%v", serveErr)
	}
	if status != 0 {
		return cli.Exit("", status)
	}
	return nil
}

// requireRemote waits for the warm pool's first dial (bounded by
// --dial-timeout) and turns its failure into exit 1: ssh's
// ExitOnForwardFailure for scripts that would rather stop than wait.
func requireRemote(c *cli.Context, fw *forward.Forwarder, dials *dialWatch, remote string) error {
	select {
	case err := <-dials.first:
		if err == nil {
			return nil
		}
		fw.Shutdown(context.Background())
		return runtimeErrorf("cannot reach %s: %s; start it, fix REMOTE, or drop --require-remote to forward anyway", remote, oneLine(err.Error()))
	case <-signalsFrom(c.Context).stopCtx.Done():
		fw.Shutdown(context.Background())
		return nil
	}
}

// listenError says what went wrong binding LOCAL and what to do about it.
func listenError(local string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return runtimeErrorf("%s is already in use: stop what listens there, or pick another LOCAL port (0 picks a free one)", local)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return runtimeErrorf("permission denied listening on %s: ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port above 1023", local)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return runtimeErrorf("cannot listen on %s: that address is not on this machine; use 127.0.0.1 or one of its own addresses", local)
	}
	return runtimeErrorf("%s", oneLine(err.Error()))
}

// childProc is the COMMAND of `forward LOCAL REMOTE -- COMMAND`.
type childProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(argv []string, addr, port string, stdout, stderr io.Writer) (*childProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "WARMPORT_ADDR="+addr, "WARMPORT_PORT="+port)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		status := 127 // as a shell: not found
		if errors.Is(err, os.ErrPermission) {
			status = 126
		}
		return nil, cli.Exit(fmt.Sprintf("run %s: %v", argv[0], errors.Unwrap(err)), status)
	}
	ch := &childProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

// supervise passes SIGTERM on to the child (a second one kills it) and
// stops serving when the child exits. SIGINT is left to the child, which
// shares our terminal and gets Ctrl-C itself.
func (ch *childProc) supervise(sigs <-chan os.Signal, stopServe, kill context.CancelFunc) {
	terms := 0
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGTERM {
				continue
			}
			if terms++; terms == 1 {
				ch.terminate()
			} else {
				ch.cmd.Process.Kill()
				kill()
			}
		case <-ch.done:
			stopServe()
			return
		}
	}
}

func (ch *childProc) terminate() { ch.cmd.Process.Signal(syscall.SIGTERM) }

// wait returns the child's exit status as a shell reports it.
func (ch *childProc) wait() int {
	<-ch.done
	var ee *exec.ExitError
	if errors.As(ch.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if ch.err != nil {
		return exitRuntime
	}
	return 0
}
