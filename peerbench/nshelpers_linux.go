package main

// Hidden subcommands that run inside a network namespace, started with
// "ip netns exec NS /proc/self/exe __NAME ...": the upstream echo server of
// the time-to-first-byte test (in wpb-up) and its client (in wpb-cli, where
// the forwarder listens on that namespace's loopback).

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// readyServeRE matches the line runServe prints once it listens.
var readyServeRE = regexp.MustCompile(`^READY (\S+)$`)

// runServe serves echo on the address in args until SIGTERM/SIGINT (or
// SIGKILL: the parent kills the group, and Pdeathsig covers its death).
func runServe(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: peerbench __serve ADDR")
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	s, err := startServer(args[0], echo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peerbench serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "READY %s\n", s.addr())
	<-sigs
	s.close()
	return 0
}

// ttfbReport is what the client prints (JSON on stdout).
type ttfbReport struct {
	MS         []float64 `json:"ms"` // one per successful client, in order
	Failed     int       `json:"failed"`
	FirstError string    `json:"first_error,omitempty"`
}

// runTTFBClient runs n sequential clients against addr, each timed from
// before connect until the 1-byte reply to its 1-byte request has arrived.
func runTTFBClient(args []string) int {
	fs := flag.NewFlagSet("__ttfb", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to")
	n := fs.Int("n", 200, "number of sequential clients")
	poll := fs.Duration("poll", 0, "first poll-connect until the listener is up, for at most this long")
	settle := fs.Duration("settle", 0, "pause before the first client")
	caFile := fs.String("tls-ca", "", "speak TLS to addr, verified with this CA (PEM), without a session cache")
	name := fs.String("tls-name", "", "the name to verify with -tls-ca")
	if err := fs.Parse(args); err != nil || *addr == "" || *n < 1 {
		return 2
	}
	tlsCfg, err := tlsClientConfig(*caFile, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *poll > 0 {
		if err := pollDial(*addr, *poll); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	time.Sleep(*settle)
	var rep ttfbReport
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		d, err := firstByte(*addr, tlsCfg)
		if err != nil {
			rep.Failed++
			if rep.FirstError == "" {
				rep.FirstError = err.Error()
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		rep.MS = append(rep.MS, float64(d)/float64(time.Millisecond))
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// firstByte connects (and makes a TLS handshake if cfg is set), sends one
// byte and waits for the one-byte reply.
func firstByte(addr string, cfg *tls.Config) (time.Duration, error) {
	t0 := time.Now()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, cfg)
	} else {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(3 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if b[0] != 'x' {
		return 0, fmt.Errorf("reply %q, want %q", b[0], 'x')
	}
	return d, nil
}

// pollDial connects until a connection succeeds (closing it at once) or
// timeout passes.
func pollDial(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %s: %v", addr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
