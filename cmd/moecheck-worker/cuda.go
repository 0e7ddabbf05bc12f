//go:build cuda

package main

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/cuda"
)

// cudaBackend opens the CUDA backend, compiled in with the cuda tag.
func cudaBackend() backendFactory {
	return func(f *flags) ([]gpu.Backend, string, error) {
		lanes, err := cuda.NewLanes(cuda.Options{Device: f.device, StageGuardChecks: f.stageGuardChecks, StageSync: f.stageSync,
			TileN: f.tileN, TileK: f.tileK, Trace: f.trace}, max(1, f.lanes))
		if err != nil {
			return nil, "", err
		}
		bs := make([]gpu.Backend, len(lanes))
		for k, l := range lanes {
			bs[k] = l
		}
		return bs, lanes[0].Device(), nil
	}
}

// cudaBench times the CUDA backend.
func cudaBench() bencher { return benchCUDA }

// The self-test's guard-zone check and driver-call count need these of the CUDA lane.
var (
	_ guardProber   = (*cuda.Backend)(nil)
	_ driverCounter = (*cuda.Backend)(nil)
)
