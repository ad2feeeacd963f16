package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/urfave/cli/v2"
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
	ssh, err := sshOptions(c)
	if err != nil {
		return err
	}
	o := sessionOptions(func(string) *cli.Context { return c })
	o.command = fa.command
	return runSession(c, []forwardSpec{{local: fa.local, remote: fa.remote, cfg: cfg, requireRemote: c.Bool("require-remote"),
		ssh: ssh, tls: c.Bool("tls"), tlsWarning: tlsWarning(c)}}, o)
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

// childProc is the COMMAND of `forward LOCAL REMOTE -- COMMAND` and `up -- COMMAND`.
type childProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(argv []string, env []string, stdout, stderr io.Writer) (*childProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
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
