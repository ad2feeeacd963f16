//go:build !linux || wpgoroutines

package forward

import (
	"os"
	"strconv"
	"time"
)

// engineTestSetup counts the relay's pooled buffers (bufsHeld) and reads
// its test knobs from the environment.
func engineTestSetup() {
	bufsOut = func(delta int) { bufsHeld.Add(int64(delta)) }
	// WARMPORT_TEST_PARK_AFTER=1ms runs every test with directions parking
	// almost at once: a stress of every path through park and resume.
	if d, err := time.ParseDuration(os.Getenv("WARMPORT_TEST_PARK_AFTER")); err == nil {
		parkAfter = d
	}
	// WARMPORT_TEST_WAIT_BUDGET=0 makes every direction with nothing to read
	// park at once instead of waiting in the netpoller.
	if n, err := strconv.Atoi(os.Getenv("WARMPORT_TEST_WAIT_BUDGET")); err == nil {
		waitBudget = int32(n)
	}
}
