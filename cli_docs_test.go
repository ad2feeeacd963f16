package main

// Tests of what the CLI says about itself: the man page, shell completion
// in the real shells, and --version.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

//go:generate go test -run ^TestManPage$ -update .

// TestManPage: docs/warmport.1 is what the flag tables make now (go generate,
// or go test -run TestManPage -update, rewrites it).
func TestManPage(t *testing.T) {
	man, err := newApp(nil, nil).ToManWithSection(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--warm", "--json-file", "--require-remote", "0 = never", "completion"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page: no %q in it", want)
		}
	}
	golden(t, filepath.Join("docs", "warmport.1"), []byte(man))
}

// needShell returns the path of a shell, failing with the Debian package to
// install when it is missing.
func needShell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install %s)", name, name, name)
	}
	return p
}

// completionScript writes `warmport completion SHELL` to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	r := runWarmport(t, "completion", shell)
	if r.status != 0 || r.stdout == "" {
		t.Fatalf("warmport completion %s: status %d, stderr %q", shell, r.status, r.stderr)
	}
	path := filepath.Join(t.TempDir(), "warmport."+shell)
	if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// shellOutput runs script in the shell at path and returns its stdout,
// failing on any stderr: a completion script that loads with complaints is
// broken.
func shellOutput(t *testing.T, path string, args ...string) string {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %q: %v\nstderr:\n%s", path, args, err, stderr.String())
	}
	return stdout.String()
}

// TestCompletion: each shell's script loads in that shell without a
// complaint and completes commands and forward's flags (bash and fish are
// asked to complete; zsh's completion system needs a terminal, so there the
// test checks the function loads and is registered for warmport).
func TestCompletion(t *testing.T) {
	t.Parallel()
	t.Run("bash", func(t *testing.T) {
		t.Parallel()
		sh, script := needShell(t, "bash"), completionScript(t, "bash")
		for _, tc := range []struct{ words, want string }{
			{"warmport co", "completion"},
			{"warmport forward --war", "--warm"},
			{"warmport forward --json-", "--json-file"},
			{"warmport completion ", "bash zsh fish"},
			{"warmport bench --cl", "--clients"},
		} {
			words := strings.Fields(tc.words)
			if strings.HasSuffix(tc.words, " ") {
				words = append(words, "")
			}
			got := shellOutput(t, sh, append([]string{"--norc", "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _warmport; echo "${COMPREPLY[*]}"`, "bash", script}, words...)...)
			if strings.TrimSpace(got) != tc.want {
				t.Errorf("bash completes %q: got %q; want %q", tc.words, strings.TrimSpace(got), tc.want)
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		t.Parallel()
		sh, script := needShell(t, "zsh"), completionScript(t, "zsh")
		got := shellOutput(t, sh, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- "${_comps[warmport]}" && whence -w _warmport`, "zsh", script)
		if want := "_warmport\n_warmport: function\n"; got != want {
			t.Errorf("zsh after loading the script: got %q; want %q", got, want)
		}
	})
	t.Run("fish", func(t *testing.T) {
		t.Parallel()
		sh, script := needShell(t, "fish"), completionScript(t, "fish")
		for _, tc := range []struct{ line, want string }{
			{"warmport forward --war", "--warm"},
			{"warmport forward --json-f", "--json-file"},
			{"warmport sta", "stats"},
		} {
			got := shellOutput(t, sh, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, tc.line)
			first, _, _ := strings.Cut(strings.SplitN(got, "\n", 2)[0], "\t")
			if first != tc.want {
				t.Errorf("fish completes %q: got %q; want %q first", tc.line, got, tc.want)
			}
		}
	})
}

// TestVersion: --version and -v print the module version and VCS revision
// the binary carries, as `go version -m` reads them ("(devel)" when the go
// command stamped no version).
func TestVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "version", "-m", warmportBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	mod := regexp.MustCompile(`(?m)^\tmod\t\S+\t(\S+)`).FindSubmatch(out)
	if mod == nil {
		t.Fatalf("go version -m: no mod line:\n%s", out)
	}
	want := "warmport " + string(mod[1])
	if rev := regexp.MustCompile(`(?m)^\tbuild\tvcs.revision=(\S+)`).FindSubmatch(out); rev != nil {
		want += " (revision " + string(rev[1])
	}
	for _, flag := range []string{"--version", "-v"} {
		r := runWarmport(t, flag)
		if r.status != 0 || !strings.HasPrefix(r.stdout, want) || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("warmport %s: status %d, stdout %q; want 0 and one line starting %q", flag, r.status, r.stdout, want)
		}
	}
}
