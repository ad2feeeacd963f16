package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/pool"
)

// Defaults of forward's flags; README.md explains each choice.
const (
	defaultWarm         = 2
	defaultDrainTimeout = 10 * time.Second
)

var forwardCommand = &cli.Command{
	Name:      "forward",
	Usage:     "listen on LOCAL and relay every connection to REMOTE",
	ArgsUsage: "LOCAL REMOTE [-- COMMAND [ARG...]]",
	Description: "LOCAL is PORT, :PORT, HOST:PORT or [IPv6]:PORT; a bare port binds 127.0.0.1 and 0 picks a free port.\n" +
		"REMOTE is HOST:PORT, [IPv6]:PORT or a bare PORT on 127.0.0.1. Flags go before LOCAL REMOTE.\n" +
		"With -- COMMAND, warmport runs COMMAND with WARMPORT_ADDR and WARMPORT_PORT set and exits with its status.",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "warm", Value: defaultWarm, Usage: "upstream connections kept pre-dialed (0 turns pre-dialing off)"},
		&cli.IntFlag{Name: "pool-max", Value: pool.DefaultMax, Usage: "LRU bound on idle pooled connections"},
		&cli.DurationFlag{Name: "pool-ttl", Value: pool.DefaultTTL, Usage: "close a pooled connection idle longer than this; never hand it out"},
		&cli.BoolFlag{Name: "reuse", Usage: "recycle an upstream connection after a clean client close (request/response protocols only)"},
		&cli.IntFlag{Name: "max-conns", Usage: "clients relayed at once; extra ones wait (0 = no limit)"},
		&cli.DurationFlag{Name: "idle-timeout", Usage: "close a connection with no byte either way for this long (0 = never)"},
		&cli.DurationFlag{Name: "dial-timeout", Value: forward.DefaultDialTimeout, Usage: "give up dialing REMOTE after this long"},
		&cli.DurationFlag{Name: "exit-idle", Usage: "exit after this long with no connection open (0 = never)"},
		&cli.DurationFlag{Name: "drain-timeout", Value: defaultDrainTimeout, Usage: "on SIGINT/SIGTERM, wait this long for open connections"},
		&cli.BoolFlag{Name: "json", Usage: "print the session summary as JSON on stdout at exit"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no line per closed connection"},
		stateDirFlag,
	},
	OnUsageError: onUsageError,
	Action:       forwardAction,
}

// forwardArgs are LOCAL, REMOTE and the optional child command.
type forwardArgs struct {
	local, remote string
	command       []string
}

func parseForwardArgs(args []string) (forwardArgs, error) {
	var fa forwardArgs
	switch {
	case len(args) == 0:
		return fa, usageErrorf("missing LOCAL and REMOTE: warmport forward [flags] LOCAL REMOTE, e.g. warmport forward 8080 db:5432")
	case len(args) == 1:
		return fa, usageErrorf("missing REMOTE after %q: warmport forward [flags] LOCAL REMOTE", args[0])
	}
	for _, a := range args[:2] {
		if strings.HasPrefix(a, "-") && a != "-" {
			return fa, usageErrorf("flag %s after LOCAL or where LOCAL belongs: flags go first, as in warmport forward --warm 4 8080 db:5432", a)
		}
	}
	var err error
	if fa.local, err = forward.ParseLocal(args[0]); err != nil {
		return fa, usageErrorf("%v", err)
	}
	if fa.remote, err = forward.ParseRemote(args[1]); err != nil {
		return fa, usageErrorf("%v", err)
	}
	rest := args[2:]
	switch {
	case len(rest) == 0:
	case rest[0] == "--" && len(rest) == 1:
		return fa, usageErrorf("missing COMMAND after --")
	case rest[0] == "--":
		fa.command = rest[1:]
	case strings.HasPrefix(rest[0], "-"):
		return fa, usageErrorf("flag %s after LOCAL REMOTE would be ignored: flags go before them, as in warmport forward %s %s %s", rest[0], rest[0], args[0], args[1])
	default:
		return fa, usageErrorf("unexpected argument %q after LOCAL REMOTE; to run a command put -- before it", rest[0])
	}
	return fa, nil
}

func forwardConfig(c *cli.Context, fa forwardArgs) (forward.Config, error) {
	for _, name := range []string{"warm", "pool-max", "max-conns"} {
		if c.Int(name) < 0 {
			return forward.Config{}, usageErrorf("--%s %d: must be 0 or more", name, c.Int(name))
		}
	}
	for _, name := range []string{"pool-ttl", "idle-timeout", "dial-timeout", "exit-idle", "drain-timeout"} {
		if c.Duration(name) < 0 {
			return forward.Config{}, usageErrorf("--%s %s: must not be negative", name, c.Duration(name))
		}
	}
	poolMax := c.Int("pool-max")
	if poolMax == 0 {
		poolMax = pool.DefaultMax // what the pool does with 0
	}
	if c.Int("warm") > poolMax {
		return forward.Config{}, usageErrorf("--warm %d exceeds --pool-max %d: raise --pool-max or lower --warm", c.Int("warm"), poolMax)
	}
	return forward.Config{
		Local:       fa.local,
		Remote:      fa.remote,
		DialTimeout: c.Duration("dial-timeout"),
		IdleTimeout: c.Duration("idle-timeout"),
		MaxConns:    c.Int("max-conns"),
		ExitIdle:    c.Duration("exit-idle"),
		Reuse:       c.Bool("reuse"),
		Pool:        pool.Options{Warm: c.Int("warm"), Max: c.Int("pool-max"), TTL: c.Duration("pool-ttl")},
	}, nil
}

func forwardAction(c *cli.Context) error {
	fa, err := parseForwardArgs(c.Args().Slice())
	if err != nil {
		return err
	}
	cfg, err := forwardConfig(c, fa)
	if err != nil {
		return err
	}
	stderr := newProgressWriter(c.App.ErrWriter)
	out := newLineQueue(stderr) // See output.go
	if !c.Bool("quiet") {
		cfg.OnClose = func(r forward.Record) { out.record(formatRecord(r) + "\n") }
	}
	fw, err := forward.New(cfg)
	if err != nil {
		return listenError(fa.local, err)
	}
	out.writeNow("warmport: forwarding %s -> %s\n", fw.Addr(), fa.remote)
	state := startStateRecorder(c.String("state-dir"), forwarderSnapshot(fw, fa.remote), out.printf) // See cmd_stats.go
	defer state.close()

	sigs := signalsFrom(c.Context)
	stopCtx, killCtx := sigs.stopCtx, sigs.killCtx
	var child *childProc
	if len(fa.command) > 0 {
		// COMMAND owns the terminal: Ctrl-C reaches it directly and is its
		// to handle; SIGTERM is passed on. Its exit ends the session.
		child, err = startChild(fa.command, fw.Addr().String(), strconv.Itoa(fw.Addr().Port), c.App.Writer, c.App.ErrWriter)
		if err != nil {
			fw.Shutdown(context.Background())
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
	var jsonErr error
	if c.Bool("json") {
		if err := json.NewEncoder(c.App.Writer).Encode(sum); err != nil {
			jsonErr = runtimeErrorf("write the JSON summary: %v", err)
		}
	}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		dropped := out.close()
		renderSummary(stderr, sum)
		if dropped > 0 {
			fmt.Fprintf(stderr, "  %s\n", dim(fmt.Sprintf("(%d lines dropped: stderr did not keep up)", dropped)))
		}
	}()
	stderr.wait(printed, killCtx)
	if jsonErr != nil {
		return jsonErr
	}
	if serveErr != nil {
		return runtimeErrorf("%v", serveErr)
	}
	if status != 0 {
		return cli.Exit("", status)
	}
	return nil
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
