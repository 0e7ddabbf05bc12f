//go:build !unix

package moe

// cpuSeconds is unknown off unix: benchmarks then report no cpu metric.
func cpuSeconds() float64 { return 0 }
