//go:build unix

package phase

import "syscall"

// cpuTime is the process's user and system CPU seconds.
type cpuTime struct{ user, sys float64 }

// cpuSeconds is the process's CPU time so far (getrusage).
func cpuSeconds() cpuTime {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return cpuTime{}
	}
	return cpuTime{float64(ru.Utime.Nano()) / 1e9, float64(ru.Stime.Nano()) / 1e9}
}
