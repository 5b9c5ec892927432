package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on every Linux we run on).
const clockTick = 10 * time.Millisecond

// procStat returns a process's parent pid and its CPU time: utime+stime, plus cutime+cstime
// (children it has waited for) when withChildren.
func procStat(pid int, withChildren bool) (ppid int, cpu time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may contain spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, 0, false
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k-3], 10, 64); return n }
	ticks := num(14) + num(15)
	if withChildren {
		ticks += num(16) + num(17)
	}
	return int(num(4)), time.Duration(ticks) * clockTick, true
}

// processCPU is one process's CPU time so far.
func processCPU(pid int) time.Duration {
	_, cpu, _ := procStat(pid, false)
	return cpu
}

// treeCPU is the CPU time of the postmaster, its live children (backends, walwriter,
// checkpointer) and the children it has reaped (backends of closed connections, like pgbench's).
func treeCPU(root int) time.Duration {
	_, total, ok := procStat(root, true)
	if !ok {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == root {
			continue
		}
		if ppid, cpu, ok := procStat(pid, false); ok && ppid == root {
			total += cpu
		}
	}
	return total
}
