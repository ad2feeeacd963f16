package activation

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
)

func TestParseLocal(t *testing.T) {
	tests := []struct {
		in       string
		wantName string
		wantOK   bool
	}{
		{"systemd", "", true}, {"systemd:db", "db", true},
		{"systemd:", "", false}, {"systemdx", "", false}, {"8080", "", false}, {"unix:/run/x.sock", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, ok := ParseLocal(tt.in)
			if name != tt.wantName || ok != tt.wantOK {
				t.Errorf("ParseLocal(%q) = %q, %v; want %q, %v", tt.in, name, ok, tt.wantName, tt.wantOK)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantErrs []string // "" for no error
	}{
		{"nothing passed", nil, []string{"LISTEN_FDS is not set", "systemd-socket-activate -l PORT warmport forward systemd REMOTE"}},
		{"zero fds", map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": "42"}, []string{`LISTEN_FDS="0"`, "systemd-socket-activate"}},
		{"garbage fds", map[string]string{"LISTEN_FDS": "x", "LISTEN_PID": "42"}, []string{`LISTEN_FDS="x"`}},
		{"another process's", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "7"}, []string{`LISTEN_PID="7" is not this process (42)`}},
		{"no pid", map[string]string{"LISTEN_FDS": "1"}, []string{`LISTEN_PID=""`}},
		{"ours", map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "42"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(func(k string) string { return tt.env[k] }, 42)
			if (err != nil) != (tt.wantErrs != nil) {
				t.Fatalf("check = %v; want an error: %v", err, tt.wantErrs != nil)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q; want it to contain %q", err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines; want one", err)
			}
		})
	}
}

// In this process nothing was passed: Listener says how to pass a socket,
// and consumes nothing, so a later call with the variables set still works.
func TestListenerWithoutFDs(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	t.Setenv("LISTEN_PID", "")
	ln, err := Listener("")
	if err == nil {
		ln.Close()
		t.Fatal("Listener with no LISTEN_FDS: nil error; want one")
	}
	if want := "systemd-socket-activate -l PORT warmport forward systemd REMOTE"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q; want it to contain %q", err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if read {
		t.Errorf("the variables were consumed by a failed Listener; want them left")
	}
}

// freeAddr is an address on 127.0.0.1 that nothing listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
}

// startActivated runs systemd-socket-activate with args (its -l and
// --fdname options), the helper as its program, and env for the helper; it
// returns once every socket listens ("Listening on ... as N." on stderr).
func startActivated(t *testing.T, listens int, args []string, env ...string) *testsrv.Proc {
	t.Helper()
	full := append(args, "-E", "WARMPORT_ACTIVATION_HELPER=serve")
	for _, e := range env {
		full = append(full, "-E", e)
	}
	full = append(full, os.Args[0], "-test.run=^$")
	p := testsrv.MustStart(t, exec.Command(testsrv.Need(t, "systemd-socket-activate", "systemd"), full...), "")
	listening := regexp.MustCompile(`(?m)^Listening on `)
	p.WaitOutput(t, fmt.Sprintf("%d sockets listening", listens), func(out string) bool {
		return len(listening.FindAllString(out, -1)) >= listens
	})
	return p
}

// The real systemd-socket-activate, for a TCP and a Unix socket: the first
// connection starts the program, it takes the socket through Listener and
// serves; a child it starts inherits neither the variables nor the socket;
// it exits 0 when idle.
func TestSystemdSocketActivate(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := freeAddr(t)
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "db.sock")
			}
			a := startActivated(t, 1, []string{"-l", addr}, "HELPER_IDLE=300ms")
			got := ask(t, network, addr, "hello")
			if want := strconv.Itoa(a.Pid()); got["pid"] != want {
				t.Errorf("served by pid %s; want %s (systemd-socket-activate execs the program)", got["pid"], want)
			}
			if got["env"] != "" {
				t.Errorf("LISTEN_FDS=%q after Listener; want it unset", got["env"])
			}
			if want := "unset,sockets:0"; got["child"] != want {
				t.Errorf("a child inherits %q; want %q (no LISTEN_FDS, no socket)", got["child"], want)
			}
			ask(t, network, addr, "again") // the same process, still serving
			if code := a.Wait(t); code != 0 {
				t.Errorf("exit code %d after idle; want 0", code)
			}
		})
	}
}

// systemd:NAME takes the socket of that name; an unknown name is exit 2
// with a line that names the ones passed.
func TestNamedSockets(t *testing.T) {
	tests := []struct {
		name     string
		wantCode int
		wantErr  string
	}{
		{"second", 0, ""},
		{"nope", 2, `warmport: LOCAL systemd:nope: no passed socket is named "nope" (left: first, second)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, second := freeAddr(t), freeAddr(t)
			a := startActivated(t, 2, []string{"-l", first, "-l", second, "--fdname=first:second"},
				"HELPER_IDLE=300ms", "HELPER_NAME="+tt.name)
			if tt.wantErr == "" {
				ask(t, "tcp", second, "hello")
			} else {
				c, err := net.Dial("tcp", second) // starts the program, which fails
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if code := a.Wait(t); code != tt.wantCode {
				t.Errorf("exit code %d; want %d", code, tt.wantCode)
			}
			if out := a.Output(); tt.wantErr != "" && !strings.Contains(out, tt.wantErr) {
				t.Errorf("stderr:\n%s\nwant the line %q", out, tt.wantErr)
			}
		})
	}
}

func TestDocsSamples(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"warmport-db.socket", "Accept=no"},
		{"warmport-db.service", "ExecStart=/usr/local/bin/warmport forward --exit-idle 60s systemd db.internal:5432"},
	} {
		b, err := os.ReadFile(filepath.Join("..", "docs", "systemd", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tt.want+"\n") {
			t.Errorf("%s: no line %q", tt.file, tt.want)
		}
	}
}
