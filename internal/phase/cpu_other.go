//go:build !unix

package phase

// cpuTime is the process's user and system CPU seconds.
type cpuTime struct{ user, sys float64 }

// cpuSeconds is zero where getrusage is not available: the timeline then shows wall times
// only.
func cpuSeconds() cpuTime { return cpuTime{} }
