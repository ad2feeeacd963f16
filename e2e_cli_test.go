package main

// End-to-end tests of the command line: child mode, errors and their exit
// statuses, and where output goes.

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestChildCommand: `forward LOCAL REMOTE -- COMMAND` runs COMMAND with
// WARMPORT_ADDR and WARMPORT_PORT, lets it connect through the forwarder,
// and exits with its status; a command that cannot run exits 127 (126 when
// it is not executable), as a shell does, with one line of error.
func TestChildCommand(t *testing.T) {
	t.Parallel()
	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name    string
			command []string
			want    int
		}{
			{"exit 7", []string{"sh", "-c", "exit 7"}, 7},
			{"exit 0", []string{"sh", "-c", "exit 0"}, 0},
			{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				up := startUpstream(t, echo)
				r := runWarmport(t, append([]string{"forward", "0", up.addr(), "--"}, tc.command...)...)
				if r.status != tc.want {
					t.Errorf("exit status: got %d; want %d\nstderr:\n%s", r.status, tc.want, r.stderr)
				}
				checkNoPanic(t, r.stderr)
			})
		}
	})

	t.Run("SIGTERM is passed on", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, echo)
		p := startWarmport(t, "forward", "0", up.addr(), "--", "sh", "-c", "exec sleep 60")
		p.waitReady(t)
		p.signal(t, syscall.SIGTERM)
		r := p.wait(t, exitTimeout)
		if want := 128 + int(syscall.SIGTERM); r.status != want {
			t.Errorf("exit status: got %d; want %d (the child's, killed by the SIGTERM passed on)\nstderr:\n%s", r.status, want, r.stderr)
		}
	})

	t.Run("environment and connection", func(t *testing.T) {
		t.Parallel()
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		up := startUpstream(t, echo)
		p := startWarmportEnv(t, []string{"NO_COLOR=1", helperEnv + "=dial"}, "forward", "--json", "0", up.addr(), "--", self)
		addr := p.waitReady(t)
		r := p.wait(t, exitTimeout)
		if r.status != 0 {
			t.Fatalf("exit status: got %d; want 0 (the child's)\nstdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
		}
		m := regexp.MustCompile(`helper: addr=(\S+) port=(\S+) client=(\S+) reply="(.*)"`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("the child's report is not on stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
		_, port, _ := net.SplitHostPort(addr)
		if m[1] != addr || m[2] != port || m[4] != "hello from the child" {
			t.Errorf("child saw WARMPORT_ADDR %s WARMPORT_PORT %s and an echo of %q; want %s, %s and %q",
				m[1], m[2], m[4], addr, port, "hello from the child")
		}
		sum := parseSummary(t, r.stdout)
		if rec := sum.record(t, m[3]); rec.ClosedBy != "client" || rec.BytesUp != 20 || rec.BytesDown != 20 {
			t.Errorf("record of the child's connection: got closed_by %q up %d down %d; want %q, 20, 20", rec.ClosedBy, rec.BytesUp, rec.BytesDown, "client")
		}
	})

	t.Run("command cannot run", func(t *testing.T) {
		t.Parallel()
		notExec := filepath.Join(t.TempDir(), "not-executable")
		if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, command string
			want          int
		}{
			{"not in PATH", "warmport-e2e-no-such-command", 127},
			{"no such file", "/nonexistent/warmport-e2e-no-such-command", 127},
			{"not executable", notExec, 126},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				up := startUpstream(t, echo)
				r := runWarmport(t, "forward", "0", up.addr(), "--", tc.command)
				if r.status != tc.want {
					t.Errorf("exit status: got %d; want %d\nstderr:\n%s", r.status, tc.want, r.stderr)
				}
				// The ready line comes first (warmport was listening), then one error line.
				var errLines []string
				for _, l := range lines(r.stderr) {
					if !readyRE.MatchString(l) {
						errLines = append(errLines, l)
					}
				}
				if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "warmport: ") || !strings.Contains(errLines[0], tc.command) {
					t.Errorf("stderr besides the ready line: got %q; want one line \"warmport: ...\" naming %s", errLines, tc.command)
				}
				checkNoPanic(t, r.stderr)
			})
		}
	})
}

// TestBadInvocations: usage errors exit 2, runtime errors 1, each with one
// line on stderr that starts with "warmport: " and is no panic.
func TestBadInvocations(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0") // held for the "in use" row
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name   string
		args   []string
		status int
		has    string // the message must contain this (what is wrong)
		hasNot string // and must not say this
	}{
		{"forward without args", []string{"forward"}, 2, "LOCAL", ""},
		{"forward with one arg", []string{"forward", "8080"}, 2, "REMOTE", ""},
		{"LOCAL IPv6 without brackets", []string{"forward", "::1:80", "80"}, 2, "::1:80", ""},
		{"LOCAL a word", []string{"forward", "abc", "80"}, 2, "abc", ""},
		{"LOCAL port out of range", []string{"forward", "70000", "80"}, 2, "65535", "missing port"},
		{"LOCAL port not a number", []string{"forward", "1.2.3.4:x", "80"}, 2, "1.2.3.4:x", ""},
		{"REMOTE without port", []string{"forward", "0", "db"}, 2, "db", ""},
		{"REMOTE :0", []string{"forward", "0", ":0"}, 2, ":0", ""},
		{"REMOTE port 0", []string{"forward", "0", "0"}, 2, "REMOTE", ""},
		{"REMOTE host port 0", []string{"forward", "0", "127.0.0.1:0"}, 2, "127.0.0.1:0", ""},
		{"REMOTE port out of range", []string{"forward", "0", "99999"}, 2, "65535", "missing port"},
		{"REMOTE bad host", []string{"forward", "0", "db,5432:1"}, 2, "db,5432", ""},
		{"unknown flag", []string{"forward", "--nope", "0", "80"}, 2, "--nope", ""},
		{"flag after LOCAL REMOTE", []string{"forward", "0", "80", "--json"}, 2, "--json", ""},
		{"flag between LOCAL and REMOTE", []string{"forward", "0", "--json", "80"}, 2, "--json", ""},
		{"extra argument", []string{"forward", "0", "80", "extra"}, 2, "extra", ""},
		{"bad duration", []string{"forward", "--idle-timeout", "5x", "0", "80"}, 2, "5x", "unknown flag"},
		{"bad number", []string{"forward", "--warm", "x", "0", "80"}, 2, "--warm", "unknown flag"},
		{"negative --warm", []string{"forward", "--warm", "-1", "0", "80"}, 2, "--warm", ""},
		{"negative duration", []string{"forward", "--drain-timeout", "-1s", "0", "80"}, 2, "--drain-timeout", ""},
		{"--warm above --pool-max", []string{"forward", "--warm", "9", "--pool-max", "8", "0", "80"}, 2, "--pool-max", ""},
		{"--warm above the default --pool-max", []string{"forward", "--warm", "20", "0", "80"}, 2, "--pool-max", ""},
		{"--warm above --pool-max 0 (the default)", []string{"forward", "--warm", "9", "--pool-max", "0", "0", "80"}, 2, "--pool-max", ""},
		{"-- without command", []string{"forward", "0", "80", "--"}, 2, "COMMAND", ""},
		{"duration without unit", []string{"forward", "--pool-ttl", "5", "0", "80"}, 2, "--pool-ttl 5: missing unit: write 5s", "parse error"},
		{"flag and value after LOCAL REMOTE", []string{"forward", "0", "80", "--warm", "4"}, 2, "warmport forward --warm 4 0 80", "ignored"},
		{"flag after LOCAL REMOTE, value missing", []string{"forward", "0", "80", "--warm"}, 2, "warmport forward --warm VALUE 0 80", ""},
		{"--warm above its bound", []string{"forward", "--warm", "101", "--pool-max", "200", "0", "80"}, 2, "0 to 100", ""},
		{"--pool-max 0", []string{"forward", "--pool-max", "0", "0", "80"}, 2, "1 to 1024", ""},
		{"--max-conns above its bound", []string{"forward", "--max-conns", "500001", "0", "80"}, 2, "0 to 500000", ""},
		{"--pool-ttl 0", []string{"forward", "--pool-ttl", "0s", "0", "80"}, 2, "more than 0", ""},
		{"--dial-timeout 0", []string{"forward", "--dial-timeout", "0s", "0", "80"}, 2, "more than 0", ""},
		{"negative --idle-timeout", []string{"forward", "--idle-timeout", "-1s", "0", "80"}, 2, "--idle-timeout -1s: must not be negative", ""},
		{"--require-remote without warm connections", []string{"forward", "--require-remote", "--warm", "0", "0", "80"}, 2, "--warm 1", ""},
		{"--json-file in a missing directory", []string{"forward", "--json-file", "/nonexistent/dir/s.json", "0", "80"}, 2, "--json-file", ""},
		{"unknown flag of the app", []string{"--nope"}, 2, "unknown flag --nope; run 'warmport --help'", "warmport warmport"},
		{"a short flag is echoed as typed", []string{"forward", "-v", "0", "80"}, 2, "unknown flag -v;", "--v"},
		{"completion without a shell", []string{"completion"}, 2, "bash, zsh or fish", ""},
		{"completion of an unknown shell", []string{"completion", "tcsh"}, 2, "tcsh", ""},
		{"unknown command", []string{"nope"}, 2, "nope", ""},
		{"LOCAL port in use", []string{"forward", busyPort, "80"}, 1, busyPort, ""},
		{"LOCAL port below 1024", []string{"forward", "1", "80"}, 1, "1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "LOCAL port below 1024" {
				skipIfLowPortsAllowed(t, 1)
			}
			r := runWarmport(t, tc.args...)
			if r.status != tc.status {
				t.Errorf("warmport %s: exit status: got %d; want %d\nstderr:\n%s", strings.Join(tc.args, " "), r.status, tc.status, r.stderr)
			}
			ls := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(ls) != 1 || !strings.HasPrefix(ls[0], "warmport: ") || !strings.HasSuffix(r.stderr, "\n") {
				t.Errorf("stderr: got %q; want one line starting with \"warmport: \"", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.has) {
				t.Errorf("stderr: got %q; want it to mention %q", r.stderr, tc.has)
			}
			if tc.hasNot != "" && strings.Contains(r.stderr, tc.hasNot) {
				t.Errorf("stderr: got %q; want it not to say %q (that is not what is wrong)", r.stderr, tc.hasNot)
			}
			if r.stdout != "" {
				t.Errorf("stdout: got %q; want nothing", r.stdout)
			}
			checkNoPanic(t, r.stderr)
		})
	}
}

// skipIfLowPortsAllowed skips a test that needs binding port to be refused:
// root may bind it, and so may anyone when the kernel's
// ip_unprivileged_port_start is at or below it.
func skipIfLowPortsAllowed(t *testing.T, port int) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skipf("running as root, which may listen on port %d: the permission-denied case cannot be tested", port)
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return
	}
	if start, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && start <= port {
		t.Skipf("net.ipv4.ip_unprivileged_port_start is %d: anyone may listen on port %d", start, port)
	}
}

func checkNoPanic(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic", "goroutine"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, stderr)
		}
	}
}

// TestOutput: the ready line and the human output go to stderr, stdout is
// empty without --json and holds only the JSON with it, -q drops the lines
// printed as connections close, and no escape code is printed when stderr
// is not a terminal, NO_COLOR or not.
func TestOutput(t *testing.T) {
	t.Parallel()
	// session runs one forwarder with one echo client; it returns how the
	// process ended, the client's address, and stderr as it was before the
	// signal (so after the connection closed, before the exit summary).
	session := func(t *testing.T, env []string, flags ...string) (r result, client, before string) {
		t.Helper()
		up := startUpstream(t, echo)
		p := startWarmportEnv(t, env, append(append([]string{"forward"}, flags...), "0", up.addr())...)
		addr := p.waitReady(t)
		client = echoOnce(t, addr, "hello")
		if !slices.Contains(flags, "-q") {
			waitStderr(t, p, client) // the line printed as the connection closed
		}
		before = p.Output()
		r = p.stop(t)
		return r, client, before
	}
	mentions := func(s, client string) int { return strings.Count(s, client) }

	plain, client, before := session(t, []string{"NO_COLOR=1"})
	if plain.stdout != "" {
		t.Errorf("stdout without --json: got %q; want nothing", plain.stdout)
	}
	if first := lines(plain.stderr)[0]; !readyRE.MatchString(first) {
		t.Errorf("first line of stderr: got %q; want the ready line", first)
	}
	if mentions(before, client) != 1 {
		t.Errorf("stderr before the exit: got %q; want one line about connection %s", before, client)
	}

	t.Run("quiet", func(t *testing.T) {
		r, quietClient, _ := session(t, []string{"NO_COLOR=1"}, "-q")
		// The same session as plain, less the line printed as the connection closed.
		if got, want := mentions(r.stderr, quietClient), mentions(plain.stderr, client)-1; got != want {
			t.Errorf("-q: lines about the connection: got %d; want %d (the summary's only)\nstderr:\n%s", got, want, r.stderr)
		}
	})

	t.Run("json", func(t *testing.T) {
		r, _, _ := session(t, []string{"NO_COLOR=1"}, "--json")
		if n := len(lines(r.stdout)); n != 1 {
			t.Errorf("stdout with --json: got %d lines; want the JSON line only\n%s", n, r.stdout)
		}
		if !readyRE.MatchString(r.stderr) {
			t.Errorf("stderr with --json: got %q; want the ready line there", r.stderr)
		}
	})

	t.Run("no color without a terminal", func(t *testing.T) {
		r, _, _ := session(t, nil, "--json") // NO_COLOR unset
		for name, s := range map[string]string{"stderr": r.stderr, "stdout": r.stdout} {
			if strings.Contains(s, "\x1b") {
				t.Errorf("%s has escape codes though stderr is not a terminal:\n%q", name, s)
			}
		}
	})
}
