package activation

import (
	"os"
	"testing"

	"github.com/warmport/warmport/internal/testsrv"
)

// Scale to zero on demand: the first connection starts the service, it
// serves, exits 0 when idle, the next connection starts it again, and no
// client is refused, reset or left unanswered, including those that arrive
// while a service is exiting. This is the helper standing in for `warmport
// forward --exit-idle DUR systemd REMOTE`.
func TestScaleToZero(t *testing.T) {
	s := testsrv.StartStandIn(t, append(os.Environ(), "WARMPORT_ACTIVATION_HELPER=serve", "HELPER_IDLE=150ms"),
		os.Args[0], "-test.run=^$")

	// Rounds separated by exits: each round is one process, each a new one.
	pids := map[string]bool{}
	for round := 0; round < 3; round++ {
		pid := ask(t, "tcp", s.Addr, "first")["pid"]
		if again := ask(t, "tcp", s.Addr, "second")["pid"]; again != pid {
			t.Errorf("round %d: served by %s then %s; want one process while busy", round, pid, again)
		}
		if pids[pid] {
			t.Errorf("round %d: served by %s again; want a new process after the exit", round, pid)
		}
		pids[pid] = true
		s.WaitExit(t)
	}

	// Clients at gaps short and past the idle time in turn: some land
	// while the service is going away.
	s.Load(10, func(int) { ask(t, "tcp", s.Addr, "random") })
	// 3 rounds, then 5 gaps past the idle time (the last exit may not be
	// in yet).
	s.WantExits(t, 7)
}
