//go:build unix

package sim

import "syscall"

// cpuSeconds is the process's user + system CPU time so far (getrusage), for the benchmarks'
// cpu-s/op metric: unlike wall time it does not grow when other processes share the cores.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
