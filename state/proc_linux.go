package state

import (
	"bytes"
	"os"
	"strconv"
)

// procStat reads a process's start time (field 22 of /proc/PID/stat, clock
// ticks since boot) and state (field 3: 'Z' is a zombie). Together with the
// pid the start time names a process: a reused pid has another one.
func procStat(pid int) (start uint64, state byte, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// Field 2, the command name in parentheses, may hold spaces and ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+1:]) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, f[0][0], true
}
