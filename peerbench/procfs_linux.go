package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Everything here reads /proc, summing over a process tree (the forwarder and
// all its descendants: socat forks one process per connection).

// userHZ is the unit of the cutime/cstime fields of /proc/PID/stat (USER_HZ,
// 100 on every mainstream Linux architecture).
const userHZ = 100

// procStat holds the fields of /proc/PID/stat the benchmark uses.
type procStat struct {
	ppid           int
	cutime, cstime int64 // CPU of reaped children, in 1/userHZ s
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	st.cutime, _ = strconv.ParseInt(f[13], 10, 64)
	st.cstime, _ = strconv.ParseInt(f[14], 10, 64)
	return st, nil
}

// tree returns root and all its live descendants (root first).
func tree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out) && i < 1<<20; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuNanos is the CPU time the tree under root has used so far, in ns: the
// first field of /proc/PID/task/*/schedstat (time on CPU, ns precision) of
// every thread of every live process, plus cutime+cstime of each process
// (children it has reaped: socat's finished per-connection processes,
// 10 ms resolution).
func cpuNanos(root int) int64 {
	var total int64
	for _, pid := range tree(root) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue // exited meanwhile
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				total += ns
			}
		}
		if st, err := readStat(pid); err == nil {
			total += (st.cutime + st.cstime) * (1e9 / userHZ)
		}
	}
	return total
}

// memUse is the footprint of a process tree.
type memUse struct {
	procs    int
	fds      int
	rssKiB   int64 // sum of VmRSS (counts shared pages once per process)
	pssKiB   int64 // sum of Pss (shared pages split between their users)
	firstErr error
}

func memOf(root int) memUse {
	var m memUse
	for _, pid := range tree(root) {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			if m.firstErr == nil {
				m.firstErr = err
			}
			continue
		}
		m.procs++
		m.fds += len(fds)
		m.rssKiB += statusKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		m.pssKiB += statusKiB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return m
}

// statusKiB returns the "NAME:   123 kB" value of a /proc key-value file.
func statusKiB(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// hostCPU returns the busy and total time of all CPUs so far (in USER_HZ
// ticks) from the first line of /proc/stat; busy is all but idle and iowait.
func hostCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal (guest time is already in user)
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// hostBusy is how busy all CPUs together were between two hostCPU
// readings, in percent (100 = every CPU busy all the time).
func hostBusy(busy0, total0, busy1, total1 uint64) float64 {
	if total1 <= total0 {
		return 0
	}
	return 100 * float64(busy1-busy0) / float64(total1-total0)
}
