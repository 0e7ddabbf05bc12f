//go:build unix

package moe

import "syscall"

// cpuSeconds is the process's user + system CPU seconds so far (getrusage), for benchmarks'
// cpu metrics.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
