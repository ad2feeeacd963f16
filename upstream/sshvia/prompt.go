package sshvia

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// TerminalPrompt returns a Config.Prompt that asks on the controlling
// terminal (/dev/tty, as ssh does, so stdin and stdout stay the user's), or
// nil when there is none: then encrypted keys are skipped with a reason.
func TerminalPrompt() func(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	if !term.IsTerminal(int(tty.Fd())) {
		tty.Close()
		return nil
	}
	tty.Close()
	return func(prompt string) ([]byte, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer tty.Close()
		fmt.Fprint(tty, prompt)
		defer fmt.Fprintln(tty)
		return term.ReadPassword(int(tty.Fd()))
	}
}
