//go:build unix

package testsrv

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Start returns at the ready line; a process that exits first is an error
// holding its output; Wait returns the status with every line read; Stop
// ends a process that ignores nothing.
func TestStart(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		p, err := Start(t, exec.Command("/bin/sh", "-c", "echo starting; echo ready >&2; exec sleep 60"), "ready")
		if err != nil {
			t.Fatal(err)
		}
		if p.ReadyAt().IsZero() || !strings.Contains(p.Output(), "starting\n") {
			t.Errorf("ready at %v, output %q; want a time and the lines before", p.ReadyAt(), p.Output())
		}
		p.Stop()
		select {
		case <-p.Exited():
		default:
			t.Error("Stop returned before the process was reaped")
		}
	})
	t.Run("exits first", func(t *testing.T) {
		_, err := Start(t, exec.Command("/bin/sh", "-c", "echo address in use >&2; exit 3"), "ready")
		if err == nil || !strings.Contains(err.Error(), "address in use") {
			t.Errorf("Start: got %v; want an error with the output", err)
		}
	})
	t.Run("wait", func(t *testing.T) {
		p := MustStart(t, exec.Command("/bin/sh", "-c", "echo last words; exit 4"), "")
		if code := p.Wait(t); code != 4 || p.Output() != "last words\n" {
			t.Errorf("Wait: got %d, output %q; want 4, \"last words\\n\"", code, p.Output())
		}
	})
	t.Run("split stdout", func(t *testing.T) {
		p := MustStart(t, exec.Command("/bin/sh", "-c", "printf 'data\\nno newline'; echo said >&2; echo ready >&2"), "ready", SplitStdout())
		if code := p.Wait(t); code != 0 || p.Stdout() != "data\nno newline" || p.Output() != "said\nready\n" {
			t.Errorf("Wait: got %d, stdout %q, output %q; want 0, \"data\\nno newline\", \"said\\nready\\n\"", code, p.Stdout(), p.Output())
		}
	})
	t.Run("killed", func(t *testing.T) {
		p := MustStart(t, exec.Command("sleep", "60"), "")
		p.Signal(syscall.SIGKILL)
		if code := p.Wait(t); code != -1 {
			t.Errorf("Wait after SIGKILL: got %d; want -1", code)
		}
	})
}
