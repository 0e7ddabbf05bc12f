//go:build !unix

package props_test

// cpuSeconds is not measured here: the cases/cpu-s metric is left out.
func cpuSeconds() float64 { return 0 }
