//go:build cuda

package main

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/cuda"
)

// cudaBackend opens the CUDA backend, compiled in with the cuda tag.
func cudaBackend() backendFactory {
	return func(f *flags) (gpu.Backend, string, error) {
		b, err := cuda.New(cuda.Options{Device: f.device, NoGuardChecks: f.noGuardChecks, TileN: f.tileN, TileK: f.tileK})
		if err != nil {
			return nil, "", err
		}
		return b, b.Device(), nil
	}
}

// cudaBench times the CUDA backend.
func cudaBench() bencher { return benchCUDA }
