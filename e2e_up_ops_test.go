package main

// End-to-end tests of `warmport up` with stats, --exit-idle and the shell
// completion of profile names.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUpStats: `stats` lists each forward of a running up under its name,
// with the pid of the one process, and each finished one in recent; the
// table gets a NAME column.
func TestUpStats(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	up := startUpstream(t, echo)
	path := writeProfile(t, fmt.Sprintf("warm = 0\n[forward.db]\nlocal = 0\nremote = %q\n[forward.cache]\nlocal = 0\nremote = %q\n", up.addr(), up.addr()))
	p := startWarmportEnv(t, []string{"NO_COLOR=1", "WARMPORT_STATE_DIR=" + dir}, "up", "-f", path)
	addrs := p.waitReadyN(t, 2)
	echoOnce(t, addrs[1], "through cache")
	type named struct {
		PID    int    `json:"pid"`
		Name   string `json:"name"`
		Local  string `json:"local"`
		Totals struct {
			Connections uint64 `json:"connections"`
		} `json:"totals"`
	}
	var out struct {
		Running, Recent []named
	}
	decode := func() {
		r := statsRun(t, dir, "--json")
		out.Running, out.Recent = nil, nil
		if err := json.Unmarshal([]byte(r.stdout), &out); r.status != 0 || err != nil {
			t.Fatalf("stats --json: status %d, %v\n%s", r.status, err, r.stdout)
		}
	}
	deadline := time.Now().Add(statsPollTimeout)
	for decode(); len(out.Running) != 2 || out.Running[1].Totals.Connections != 1; decode() {
		if time.Now().After(deadline) {
			t.Fatalf("stats --json never showed both forwards, cache with 1 connection: %+v", out)
		}
		time.Sleep(100 * time.Millisecond) // a snapshot has no event to wait on
	}
	pid := p.cmd.Process.Pid
	for i, want := range []named{{PID: pid, Name: "db", Local: addrs[0]}, {PID: pid, Name: "cache", Local: addrs[1]}} {
		if g := out.Running[i]; g.PID != want.PID || g.Name != want.Name || g.Local != want.Local {
			t.Errorf("running[%d]: got %+v; want pid %d, name %s, local %s", i, g, want.PID, want.Name, want.Local)
		}
	}
	table := statsRun(t, dir).stdout
	if !regexp.MustCompile(`(?m)^\s*PID\s+NAME\s+LOCAL -> REMOTE`).MatchString(table) ||
		!regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+cache\s+%s -> `, pid, regexp.QuoteMeta(addrs[1]))).MatchString(table) {
		t.Errorf("stats table: no NAME column with cache's row:\n%s", table)
	}
	p.stop(t)
	decode()
	var names []string
	for _, s := range out.Recent {
		names = append(names, s.Name)
	}
	if len(out.Running) != 0 || len(names) != 2 || !strings.Contains(strings.Join(names, ","), "db") || !strings.Contains(strings.Join(names, ","), "cache") {
		t.Errorf("after exit: running %+v, recent names %v; want none running, recent db and cache", out.Running, names)
	}
}

// TestUpExitIdle: --exit-idle counts for the whole process: a connection
// held open on one forward keeps every forward up past the idle time; once
// it closes, up exits 0 after the idle time, saying so.
func TestUpExitIdle(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, echo)
	const idle = 300 * time.Millisecond
	path := writeProfile(t, fmt.Sprintf("exit-idle = %q\n[forward.a]\nlocal = 0\nremote = %q\n[forward.b]\nlocal = 0\nremote = %q\n", idle, up.addr(), up.addr()))
	p := startWarmport(t, "up", "-f", path)
	addrs := p.waitReadyN(t, 2)
	c, err := dialClient(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to wait on: the point is time passing with a connection open.
	time.Sleep(3 * idle)
	if p.exited() {
		t.Fatalf("up exited with a connection open on forward a\nstderr:\n%s", p.Output())
	}
	echoOnce(t, addrs[1], "b still serves")
	c.Close()
	r := p.wait(t, exitTimeout)
	if want := fmt.Sprintf("warmport: no connection for %s, exiting\n", idle); r.status != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("got status %d; want 0 and %q in stderr:\n%s", r.status, want, r.stderr)
	}
}

// TestForwardJSONName: forward's JSON summary has "name", empty.
func TestForwardJSONName(t *testing.T) {
	t.Parallel()
	p := startWarmport(t, "forward", "--json", "--warm", "0", "0", "127.0.0.1:1")
	p.waitReady(t)
	r := p.stop(t)
	if !strings.HasPrefix(r.stdout, `{"name":"","local":`) {
		t.Errorf("forward --json: got %q; want it to start {\"name\":\"\",\"local\":", r.stdout)
	}
}

// TestUpCompletion: bash and fish complete the profile's forward names
// after up, from ./warmport.toml or the file -f names, by asking the
// warmport being completed.
func TestUpCompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "warmport.toml"), []byte("[forward.db]\nlocal = 1\nremote = 2\n[forward.web-api]\nlocal = 3\nremote = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := writeProfile(t, "[forward.cache]\nlocal = 1\nremote = 2\n")
	path := "PATH=" + filepath.Dir(warmportBin) + string(os.PathListSeparator) + os.Getenv("PATH")
	t.Run("bash", func(t *testing.T) {
		t.Parallel()
		sh, script := needShell(t, "bash"), completionScript(t, "bash")
		for _, tc := range []struct{ words, want string }{
			{"warmport up ", "db web-api"},
			{"warmport up w", "web-api"},
			{"warmport up db ", "db web-api"},
			{"warmport up -f " + other + " ", "cache"},
			{"warmport up --fi", "--file"},
			{"warmport up -- ", ""},
		} {
			words := strings.Fields(tc.words)
			if strings.HasSuffix(tc.words, " ") {
				words = append(words, "")
			}
			got := shellOutput(t, sh, append([]string{"--norc", "-c", `cd "$1"; export "$2"; source "$3"; shift 3; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _warmport; echo "${COMPREPLY[*]}"`, "bash", dir, path, script}, words...)...)
			if strings.TrimSpace(got) != tc.want {
				t.Errorf("bash completes %q: got %q; want %q", tc.words, strings.TrimSpace(got), tc.want)
			}
		}
	})
	t.Run("fish", func(t *testing.T) {
		t.Parallel()
		sh, script := needShell(t, "fish"), completionScript(t, "fish")
		for _, tc := range []struct{ line, want string }{
			{"warmport up ", "db,web-api"},
			{"warmport up web", "web-api"},
			{"warmport up -f " + other + " ", "cache"},
		} {
			got := shellOutput(t, sh, "--no-config", "-c", `cd $argv[1]; set -x PATH (string split -m1 = $argv[2])[2]; source $argv[3]; complete -C $argv[4]`, dir, path, script, tc.line)
			var words []string
			for _, l := range lines(got) {
				w, _, _ := strings.Cut(l, "\t")
				words = append(words, w)
			}
			if strings.Join(words, ",") != tc.want {
				t.Errorf("fish completes %q: got %q; want %q", tc.line, got, tc.want)
			}
		}
	})
}

// TestREADMEProfile: README's example profile (its ```toml block) passes
// `up --check`, so the example shows only keys that exist.
func TestREADMEProfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n```toml\n")
	block, _, closed := strings.Cut(rest, "\n```\n")
	if !ok || !closed {
		t.Fatal("README.md has no ```toml block: the Profiles section's example")
	}
	path := writeProfile(t, block+"\n")
	if r := runWarmport(t, "up", "--check", "-f", path); r.status != 0 {
		t.Errorf("up --check of README's profile: status %d, stderr %q; want 0", r.status, r.stderr)
	}
}
