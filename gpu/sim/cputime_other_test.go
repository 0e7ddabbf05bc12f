//go:build !unix

package sim

// cpuSeconds is 0 where getrusage is not available (the cpu-s/op metric then reads 0).
func cpuSeconds() float64 { return 0 }
